//! The kernel invalidations that turn the kernel's view of one tree into the next.

use super::namespace::{Invalidation, Kind};
use super::tree::{Child, Tree};

/// Invalidations turning the kernel's view of `old` into `new`.
pub(super) fn diff(old: &Tree, new: &Tree) -> Vec<Invalidation> {
    let mut names = Vec::new();
    let mut inodes = Vec::new();
    for (&ino, nd) in &new.dirs {
        let Some(od) = old.dirs.get(&ino) else {
            continue;
        };
        let mut changed = false;
        let (mut i, mut j) = (0, 0);
        let gone = |c: &Child, names: &mut Vec<Invalidation>| {
            names.push(match c.kind {
                Kind::File => Invalidation::Delete {
                    parent: ino,
                    child: c.ino,
                    name: c.name.to_vec(),
                },
                Kind::Dir => Invalidation::Entry {
                    parent: ino,
                    name: c.name.to_vec(),
                },
            })
        };
        while i < od.children.len() || j < nd.children.len() {
            let o = od.children.get(i);
            let n = nd.children.get(j);
            match (o, n) {
                (Some(o), Some(n)) if o.name == n.name => {
                    if o.ino != n.ino || o.kind != n.kind {
                        changed = true;
                        names.push(Invalidation::Entry {
                            parent: ino,
                            name: n.name.to_vec(),
                        });
                    }
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(n)) if o.name < n.name => {
                    changed = true;
                    gone(o, &mut names);
                    i += 1;
                }
                (Some(o), None) => {
                    changed = true;
                    gone(o, &mut names);
                    i += 1;
                }
                (_, Some(n)) => {
                    changed = true;
                    names.push(Invalidation::Entry {
                        parent: ino,
                        name: n.name.to_vec(),
                    });
                    j += 1;
                }
                (None, None) => break,
            }
        }
        if changed || od.mtime != nd.mtime || od.subdirs != nd.subdirs {
            inodes.push(Invalidation::Inode { ino });
        }
    }
    for (&ino, nf) in &new.files {
        if let Some(of) = old.files.get(&ino)
            && of.nlink != nf.nlink
        {
            inodes.push(Invalidation::Inode { ino });
        }
    }
    names.extend(inodes);
    names
}
