//go:build !linux

package proxy

import "syscall"

func hopSockopt(syscall.RawConn) error { return nil }
