"""Sequence to sequence: the RNN encoder-decoder with or without attention (Bahdanau; Luong),
its teacher-forced loss, greedy decoding and batched beam search."""

from dlmodels.seq2seq.batching import make_batch
from dlmodels.seq2seq.decode import beam_search, decoder, greedy, strip, translate
from dlmodels.seq2seq.model import (ATTENTIONS, CELLS, DecoderState, Memory, Parts,
                                    attention_weights, encoder_decoder, masked_softmax, parts_of)
from dlmodels.seq2seq.objectives import eval_fn, loss_fn

__all__ = ["encoder_decoder", "attention_weights", "make_batch", "loss_fn", "eval_fn", "greedy",
           "beam_search", "decoder", "translate", "strip", "DecoderState", "Memory", "Parts",
           "parts_of", "masked_softmax", "CELLS", "ATTENTIONS"]
