"""`python -m vin`: the command line. Ctrl-C while the CLI itself is still being imported exits 130 too."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:
    sys.exit(130)

if __name__ == "__main__":
    main()
