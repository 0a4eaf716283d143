#!/usr/bin/env python
"""Django's manage.py for the test store (run with .venv-oscar's Python)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oscar_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
