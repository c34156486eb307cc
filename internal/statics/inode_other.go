//go:build !unix

package statics

import "io/fs"

func inode(fs.FileInfo) string { return "" }
