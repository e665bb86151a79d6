#!/bin/sh
# kill.sh: the container's program for the worker-killed case of
# test/containerd_test.go. Three phases of numbered lines on both streams;
# after each, it waits until the test writes to the FIFO /ctl/go.
for phase in 1 2 3; do
	i=0
	while [ "$i" -lt 3000 ]; do
		echo "out $phase $i"
		echo "err $phase $i" >&2
		i=$((i + 1))
	done
	read -r go </ctl/go
done
echo "out last"
echo "err last" >&2
