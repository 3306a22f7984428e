# data tests: added by the data module
