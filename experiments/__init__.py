"""Runnable studies, installed as ``dlmodels.experiments``. Each module defines a frozen ``Config`` dataclass and ``main(config, run_dir)``;
run one with ``dlmodels run NAME [--key value ...]`` (``dlmodels list`` shows them all)."""
