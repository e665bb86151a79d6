#!/bin/sh
# emit.sh N: the container's program for test/containerd_test.go.
# Writes N numbered lines to stdout and to stderr, interleaved, then one
# line longer than line-max, then a marker on each stream; waits until the
# test writes to the FIFO /ctl/go, writes a last line on each stream and
# exits. The FIFO lets the test time `ctr run` from the last write.
n=$1
i=0
while [ "$i" -lt "$n" ]; do
	echo "out $i"
	echo "err $i" >&2
	i=$((i + 1))
done
seq -s , 1 9000
echo "out waiting"
echo "err waiting" >&2
read -r go </ctl/go
echo "out last"
echo "err last" >&2
