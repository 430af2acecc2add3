package ringfuse

import (
	"fmt"
	"strconv"
)

var opNames = [opCount]string{
	opLookup: "LOOKUP", opForget: "FORGET", opGetattr: "GETATTR", opSetattr: "SETATTR",
	opReadlink: "READLINK", opSymlink: "SYMLINK", opMknod: "MKNOD", opMkdir: "MKDIR",
	opUnlink: "UNLINK", opRmdir: "RMDIR", opRename: "RENAME", opLink: "LINK", opOpen: "OPEN",
	opRead: "READ", opWrite: "WRITE", opStatfs: "STATFS", opRelease: "RELEASE", opFsync: "FSYNC",
	opSetxattr: "SETXATTR", opGetxattr: "GETXATTR", opListxattr: "LISTXATTR",
	opRemovexattr: "REMOVEXATTR", opFlush: "FLUSH", opInit: "INIT", opOpendir: "OPENDIR",
	opReaddir: "READDIR", opReleasedir: "RELEASEDIR", opFsyncdir: "FSYNCDIR", opGetlk: "GETLK",
	opSetlk: "SETLK", opSetlkw: "SETLKW", opAccess: "ACCESS", opCreate: "CREATE",
	opInterrupt: "INTERRUPT", opBmap: "BMAP", opDestroy: "DESTROY", opIoctl: "IOCTL",
	opPoll: "POLL", opNotifyReply: "NOTIFY_REPLY", opBatchForget: "BATCH_FORGET",
	opFallocate: "FALLOCATE", opReaddirplus: "READDIRPLUS", opRename2: "RENAME2",
	opLseek: "LSEEK", opCopyFileRange: "COPY_FILE_RANGE", opSetupmapping: "SETUPMAPPING",
	opRemovemapping: "REMOVEMAPPING", opSyncfs: "SYNCFS", opTmpfile: "TMPFILE", opStatx: "STATX",
	opCopyFileRange64: "COPY_FILE_RANGE_64",
}

func opName(op uint32) string {
	if op < opCount && opNames[op] != "" {
		return opNames[op]
	}
	return "opcode " + strconv.FormatUint(uint64(op), 10)
}

// describePayload shows the names a request carries, quoted (they come
// from users), or the size of its data.
func describePayload(op uint32, payload []byte) string {
	switch op {
	case opLookup, opCreate, opMknod, opMkdir, opUnlink, opRmdir, opLink, opGetxattr, opRemovexattr, opSetxattr:
		if n, _, ok := name(payload); ok {
			return strconv.Quote(n)
		}
	case opRename, opRename2, opSymlink:
		a, rest, ok := name(payload)
		b, _, ok2 := name(rest)
		if ok && ok2 {
			return strconv.Quote(a) + " " + strconv.Quote(b)
		}
	}
	if len(payload) > 0 {
		return fmt.Sprintf("%d bytes", len(payload))
	}
	return ""
}
