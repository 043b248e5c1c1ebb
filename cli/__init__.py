"""The ``policy`` command line: a thin click front end over the policydsl library."""
