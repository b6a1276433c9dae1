"""Package data (JSON) read at run time with ``Path(__file__).parent``."""
