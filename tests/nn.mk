# nn tests: added by the nn module
