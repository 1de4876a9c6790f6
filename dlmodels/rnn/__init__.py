"""Recurrent networks: cells with the scan-native signature, one ``unroll`` for all of them."""

from dlmodels.rnn.cell import Cell
from dlmodels.rnn.convert import gru_from_torch, lstm_from_torch, lstm_to_cudnn
from dlmodels.rnn.elman import JordanState, RNNState, elman, jordan, leaky
from dlmodels.rnn.gru import gru
from dlmodels.rnn.lstm import LSTMState, lstm, lstm_no_forget, peephole_lstm
from dlmodels.rnn.models import sequence_model
from dlmodels.rnn.unroll import (SkipState, bidirectional, last_valid, reverse_padded, stacked,
                                 time_skip, unroll)

__all__ = ["Cell", "JordanState", "RNNState", "LSTMState", "SkipState", "elman", "jordan", "leaky",
           "gru", "lstm", "lstm_no_forget", "peephole_lstm", "sequence_model", "bidirectional",
           "last_valid", "reverse_padded", "stacked", "time_skip", "unroll", "lstm_from_torch",
           "gru_from_torch", "lstm_to_cudnn"]
