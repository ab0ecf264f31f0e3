"""`python -m cloud_sync`: the `cloud-sync` command line (cloud_sync/cli/)."""

import sys

from cloud_sync.cli import main

if __name__ == "__main__":
    sys.exit(main())
