//go:build !linux

package main

func dropPrivileges() error { return nil }

func dropCapabilities(writesFiles bool) error { return nil }
