"""`python -m robot_agent`: the `robot-agent` command line (robot_agent/cli/)."""

import sys

from robot_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
