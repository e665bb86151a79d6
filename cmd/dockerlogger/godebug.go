// An idle logger must not wake up (it runs in every container): without
// this the runtime looks at the cgroup CPU limit and the CPU affinity once
// a second, to update GOMAXPROCS. The limit at start still sets it
// (containermaxprocs).

//go:debug updatemaxprocs=0

package main
