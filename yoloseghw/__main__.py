"""`python -m yoloseghw` runs the yoloseg command (also under `torchrun -m yoloseghw`)."""

from yoloseghw.cli import main

if __name__ == "__main__":
    main()
