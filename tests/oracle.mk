# oracle tests: added by the oracle module
