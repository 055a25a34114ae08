"""One module per `meshbed` command: ``add_arguments(parser)`` and ``main(args) -> int``."""
