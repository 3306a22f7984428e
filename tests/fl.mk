# fl tests: added by the fl module
