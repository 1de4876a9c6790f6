"""Runnable studies. Each module defines a frozen ``Config`` dataclass and ``main(config, run_dir)``;
run one with ``dlmodels run NAME [--key value ...]`` (``dlmodels list`` shows them all)."""
