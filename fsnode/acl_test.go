package fsnode

import (
	"slices"
	"syscall"
	"testing"
)

// aclOf builds an ACL from (tag, perm, id) triples; id 0 of a base entry
// means undefined.
func aclOf(entries ...[3]uint32) acl {
	var a acl
	for _, e := range entries {
		id := e[2]
		if e[0] != aclUser && e[0] != aclGroup {
			id = aclUndefinedID
		}
		a = append(a, aclEntry{tag: uint16(e[0]), perm: uint16(e[1]), id: id})
	}
	return a
}

func TestParseACLRoundTripAndValidity(t *testing.T) {
	full := aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 4, 1002}, [3]uint32{aclGroupObj, 4, 0},
		[3]uint32{aclGroup, 5, 2001}, [3]uint32{aclMask, 6, 0}, [3]uint32{aclOther, 0, 0})
	got, errno := parseACL(full.bytes())
	if errno != 0 || !slices.Equal(got, full) {
		t.Fatalf("parseACL(bytes(%v)) = %v, %v", full, got, errno)
	}
	bad := map[string]acl{
		"no other":             aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclGroupObj, 4, 0}),
		"named without mask":   aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 4, 5}, [3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclOther, 0, 0}),
		"out of order":         aclOf([3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclUserObj, 6, 0}, [3]uint32{aclOther, 0, 0}),
		"duplicate named user": aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 4, 5}, [3]uint32{aclUser, 4, 5}, [3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclMask, 4, 0}, [3]uint32{aclOther, 0, 0}),
		"perm past rwx":        aclOf([3]uint32{aclUserObj, 8, 0}, [3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclOther, 0, 0}),
	}
	for name, a := range bad {
		if _, errno := parseACL(a.bytes()); errno != syscall.EINVAL {
			t.Errorf("%s: parseACL = %v, want EINVAL", name, errno)
		}
	}
	for _, b := range [][]byte{nil, {2, 0, 0}, {1, 0, 0, 0}, append(full.bytes(), 0)} {
		if _, errno := parseACL(b); errno != syscall.EINVAL {
			t.Errorf("parseACL(%q) = %v, want EINVAL", b, errno)
		}
	}
}

// The mode math, checked against what tmpfs gives for the same ACLs (the
// e2e tests compare whole scenarios; these pin the formulas).
func TestACLModeMath(t *testing.T) {
	base := aclOf([3]uint32{aclUserObj, 7, 0}, [3]uint32{aclGroupObj, 5, 0}, [3]uint32{aclOther, 0, 0})
	if mode, equiv := base.equivMode(0o102640); mode != 0o102750 || !equiv {
		t.Errorf("equivMode(base) = %o, %v; want 102750, true", mode, equiv)
	}
	masked := aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 6, 1002}, [3]uint32{aclGroupObj, 4, 0},
		[3]uint32{aclMask, 6, 0}, [3]uint32{aclOther, 4, 0})
	if mode, equiv := masked.equivMode(0o100000); mode != 0o100664 || equiv {
		t.Errorf("equivMode(masked) = %o, %v; want 100664, false (the mask gives the group bits)", mode, equiv)
	}

	// setfacl -d -m u:1002:rwx,g:2001:rx,m::rwx,o::r under umask 022;
	// open(O_CREAT, 0640) gives mode 0640 and mask r-- on tmpfs.
	def := aclOf([3]uint32{aclUserObj, 7, 0}, [3]uint32{aclUser, 7, 1002}, [3]uint32{aclGroupObj, 5, 0},
		[3]uint32{aclGroup, 5, 2001}, [3]uint32{aclMask, 7, 0}, [3]uint32{aclOther, 4, 0})
	access, mode, keep := def.createMasq(0o100640)
	want := aclOf([3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 7, 1002}, [3]uint32{aclGroupObj, 5, 0},
		[3]uint32{aclGroup, 5, 2001}, [3]uint32{aclMask, 4, 0}, [3]uint32{aclOther, 0, 0})
	if mode != 0o100640 || !keep || !slices.Equal(access, want) {
		t.Errorf("createMasq(0640) = %v, %o, %v; want %v, 100640, true", access, mode, keep, want)
	}
	if _, mode, keep := base.createMasq(0o040777); mode != 0o040750 || keep {
		t.Errorf("createMasq of a base-only default ACL = %o, %v; want 40750, false", mode, keep)
	}

	if got := masked.chmodMasq(0o751); !slices.Equal(got, aclOf([3]uint32{aclUserObj, 7, 0}, [3]uint32{aclUser, 6, 1002},
		[3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclMask, 5, 0}, [3]uint32{aclOther, 1, 0})) {
		t.Errorf("chmodMasq(0751) = %v: want the mask, not group_obj, to take the group bits", got)
	}
}
