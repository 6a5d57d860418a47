//go:build !unix

package workspace

// openFlags are added to every open of a file in DIR; os.Root alone
// confines them here.
const openFlags = 0
