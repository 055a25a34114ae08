"""meshbed orchestrator: topology model, loader, scenario engine, backends, CLI, reports."""

__version__ = "0.1.0"
