package fsnode

import "github.com/hanwen/go-fuse/v2/fs"

// Compile-time checks that each node and handle type implements the go-fuse
// interfaces it is meant to: a drifted signature would otherwise silently
// fall back to go-fuse's default behaviour.

var (
	_ fs.NodeStatfser      = (*node)(nil)
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
)

var (
	_ fs.NodeGetattrer      = (*Dir)(nil)
	_ fs.NodeSetattrer      = (*Dir)(nil)
	_ fs.NodeLookuper       = (*Dir)(nil)
	_ fs.NodeMkdirer        = (*Dir)(nil)
	_ fs.NodeMknoder        = (*Dir)(nil)
	_ fs.NodeSymlinker      = (*Dir)(nil)
	_ fs.NodeCreater        = (*Dir)(nil)
	_ fs.NodeTmpfiler       = (*Dir)(nil)
	_ fs.NodeLinker         = (*Dir)(nil)
	_ fs.NodeUnlinker       = (*Dir)(nil)
	_ fs.NodeRmdirer        = (*Dir)(nil)
	_ fs.NodeRenamer        = (*Dir)(nil)
	_ fs.NodeOpendirHandler = (*Dir)(nil)
	_ fs.NodeFsyncer        = (*Dir)(nil)
	_ fs.FileReleasedirer   = (*dirStream)(nil)
	_ fs.FileFsyncdirer     = (*dirStream)(nil)
)

var (
	_ fs.NodeGetattrer     = (*File)(nil)
	_ fs.NodeSetattrer     = (*File)(nil)
	_ fs.NodeOpener        = (*File)(nil)
	_ fs.NodeReader        = (*File)(nil)
	_ fs.NodeWriter        = (*File)(nil)
	_ fs.NodeWritever      = (*File)(nil)
	_ fs.NodeAllocater     = (*File)(nil)
	_ fs.NodeLseeker       = (*File)(nil)
	_ fs.NodeFsyncer       = (*File)(nil)
	_ fs.NodeGetxattrer    = (*File)(nil)
	_ fs.NodeSetxattrer    = (*File)(nil)
	_ fs.NodeRemovexattrer = (*File)(nil)
	_ fs.FileReleaser      = (*handle)(nil)
)

var (
	_ fs.NodeGetattrer  = (*Symlink)(nil)
	_ fs.NodeSetattrer  = (*Symlink)(nil)
	_ fs.NodeReadlinker = (*Symlink)(nil)
	_ fs.NodeGetattrer  = (*Special)(nil)
	_ fs.NodeSetattrer  = (*Special)(nil)
)

var (
	_ inode = (*Dir)(nil)
	_ inode = (*File)(nil)
	_ inode = (*Symlink)(nil)
	_ inode = (*Special)(nil)
)
