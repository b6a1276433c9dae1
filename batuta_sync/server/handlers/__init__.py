"""The local Hub's request handlers, one module an area; ``server/routes.py`` maps paths to them and
``server/app.py`` joins them into one request handler class."""
