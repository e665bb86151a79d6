package protocol

import (
	"slices"
	"testing"
)

func TestWorkerEnvReplacesOwnVariables(t *testing.T) {
	env := []string{"PATH=/bin", RoleEnv + "=x", RestartsEnv + "=9", "DOCKERLOG_CONFIG={}", UpgradesEnv + "=9"}
	got := WorkerEnv(env, 2, 1)
	want := []string{"PATH=/bin", "DOCKERLOG_CONFIG={}", RoleEnv + "=worker", RestartsEnv + "=2", UpgradesEnv + "=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("WorkerEnv = %q, want %q", got, want)
	}
	if env[1] != RoleEnv+"=x" {
		t.Fatalf("WorkerEnv changed its argument: %q", env)
	}
	get := func(k string) string {
		for _, kv := range got {
			if len(kv) > len(k) && kv[:len(k)+1] == k+"=" {
				return kv[len(k)+1:]
			}
		}
		return ""
	}
	if !IsWorker(get) || Supervised(get) {
		t.Fatal("a worker's environment is not seen as a worker's")
	}
}

// TestStatusBytesDistinct: the supervisor tells what a worker said by its
// byte alone, so no two may be equal.
func TestStatusBytesDistinct(t *testing.T) {
	said := map[byte]string{}
	for name, b := range map[string]byte{"hello": HelloByte, "reading": ReadingByte, "ready": ReadyByte, "stopped": StoppedByte} {
		if other, ok := said[b]; ok {
			t.Fatalf("%s and %s are both %q", name, other, b)
		}
		said[b] = name
	}
}
