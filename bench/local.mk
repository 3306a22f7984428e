# Benchmarks print figures; they never assert a speed.
bench: fedmoe$(EXEEXT)
	./fedmoe$(EXEEXT) bench
.PHONY: bench
