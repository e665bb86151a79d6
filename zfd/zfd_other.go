//go:build !illumos && !solaris

package zfd

func platformDefaults(s Spec) Spec { return s }
