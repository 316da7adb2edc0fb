"""``python -m altmarl``: the ``altmarl`` command line (SPEC 10)."""

from altmarl.cli import main

if __name__ == "__main__":
    main()
