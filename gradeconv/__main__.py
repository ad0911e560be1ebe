"""``python -m gradeconv`` runs the command-line interface."""
import sys

from gradeconv.cli import main

sys.exit(main())
