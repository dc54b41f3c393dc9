"""The harness of tests/server (server_exe, model, Server), loaded under its own name
for the deployment tests, which live in another folder."""
import importlib.util
import os

_CONFTEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server", "conftest.py")
_spec = importlib.util.spec_from_file_location("server_harness", _CONFTEST)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
