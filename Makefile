# The few verbs people need; each is the command the README shows.
.PHONY: test test-sdk demo bench codegen dist services-up services-down

test:
	bash scripts/test.sh

test-sdk:
	bash scripts/test-sdk.sh

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

codegen:
	cargo run -p codegen -- all

dist:
	bash scripts/dist.sh

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down
