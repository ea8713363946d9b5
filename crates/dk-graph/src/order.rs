//! Execution order (Kahn's algorithm over transforms, alphabetical tie-breaks) and cycles
//! (strongly connected components, each reported with one concrete path).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use dk_diagnostics::{Code, Diagnostic};

use crate::graph::{Graph, GraphError, NodeId, NodeIx, NodeKind, NodeSet};

/// One cycle of the graph as a closed path starting and ending at the same dataset:
/// `a → t1 → b → t2 → a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub path: Vec<NodeId>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.path.iter().map(|n| n.name.as_str()).collect();
        f.write_str(&names.join(" → "))
    }
}

impl Cycle {
    /// The transforms on the cycle, in path order.
    pub fn transforms(&self) -> impl Iterator<Item = &NodeId> {
        self.path.iter().filter(|n| n.kind == NodeKind::Transform)
    }

    /// E407: the message prints the path; the primary location is the input entry where the
    /// first transform reads the cycle's first dataset; related locations point at every
    /// transform manifest of the cycle.
    pub fn diagnostic(&self, g: &Graph) -> Diagnostic {
        let ixs: Vec<Option<NodeIx>> = self.path.iter().map(|id| g.find_id(id)).collect();
        let mut d = Diagnostic::new(
            Code::GraphCycle,
            format!("the pipeline graph has a cycle: {self}"),
        );
        if let (Some(Some(a)), Some(Some(t))) = (ixs.first(), ixs.get(1)) {
            if let Some(e) = g.edge(*a, *t) {
                d = d.at_opt(e.location.clone()).label(format!(
                    "{} reads {}",
                    g.node(*t).name,
                    g.node(*a).name
                ));
            }
        }
        for (i, id) in self.path.iter().enumerate() {
            if id.kind != NodeKind::Transform {
                continue;
            }
            let (Some(Some(ix)), prev, next) = (
                ixs.get(i),
                self.path.get(i.wrapping_sub(1)),
                self.path.get(i + 1),
            ) else {
                continue;
            };
            if let Some(loc) = &g.node(*ix).location {
                let msg = match (prev, next) {
                    (Some(p), Some(n)) => format!(
                        "transform {} reads {} and writes {}",
                        id.name, p.name, n.name
                    ),
                    _ => format!("transform {}", id.name),
                };
                d = d.related(loc.clone(), msg);
            }
        }
        d.help("a Transform cannot read (directly or through other transforms) a DataSet it writes: remove one input or output along this path")
    }
}

impl Graph {
    /// Every transform in execution order: a transform comes after the transforms producing its
    /// inputs; among transforms that are ready together, alphabetical. A cycle anywhere is an
    /// error listing each cycle.
    pub fn order(&self) -> Result<Vec<NodeIx>, GraphError> {
        let n = self.len();
        let mut indegree = vec![0usize; n];
        let mut transforms = 0usize;
        // Transform-level edges: producer → consumer, through each dataset.
        let deps = |t: NodeIx| -> Vec<NodeIx> {
            let mut out: Vec<NodeIx> = Vec::new();
            for d in self.successors(t) {
                out.extend(self.successors(d));
            }
            out
        };
        for (ix, node) in self.iter() {
            if node.kind != NodeKind::Transform {
                continue;
            }
            transforms += 1;
            for c in deps(ix) {
                indegree[c.0] += 1;
            }
        }
        let mut ready: BinaryHeap<Reverse<(&str, NodeIx)>> = self
            .iter()
            .filter(|(ix, node)| node.kind == NodeKind::Transform && indegree[ix.0] == 0)
            .map(|(ix, node)| Reverse((node.name.as_str(), ix)))
            .collect();
        let mut out = Vec::with_capacity(transforms);
        while let Some(Reverse((_, ix))) = ready.pop() {
            out.push(ix);
            for c in deps(ix) {
                indegree[c.0] -= 1;
                if indegree[c.0] == 0 {
                    ready.push(Reverse((self.node(c).name.as_str(), c)));
                }
            }
        }
        if out.len() < transforms {
            return Err(GraphError::Cycle(self.cycles()));
        }
        Ok(out)
    }

    /// The transforms of `set` in execution order (the global order, restricted: a selection
    /// never reorders transforms that depend on each other through unselected ones).
    pub fn order_within(&self, set: &NodeSet) -> Result<Vec<NodeIx>, GraphError> {
        Ok(self
            .order()?
            .into_iter()
            .filter(|ix| set.contains(*ix))
            .collect())
    }

    /// Every cycle: one per strongly connected component, as a shortest closed path through
    /// the component's alphabetically first dataset. Sorted by that dataset.
    pub fn cycles(&self) -> Vec<Cycle> {
        let mut out: Vec<Cycle> = self
            .components()
            .into_iter()
            .filter_map(|c| self.cycle_in(&c))
            .collect();
        out.sort_by(|a, b| a.path.first().cmp(&b.path.first()));
        out
    }

    /// Strongly connected components with more than one node (Tarjan, iterative).
    fn components(&self) -> Vec<Vec<NodeIx>> {
        const UNSEEN: usize = usize::MAX;
        let n = self.len();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut next = 0usize;
        let mut out = Vec::new();
        let mut call: Vec<(usize, usize)> = Vec::new();
        for s in 0..n {
            if index[s] != UNSEEN {
                continue;
            }
            index[s] = next;
            low[s] = next;
            next += 1;
            stack.push(s);
            on_stack[s] = true;
            call.push((s, 0));
            while let Some(&(v, pos)) = call.last() {
                let edges = self.out_edge_ids(NodeIx(v));
                if pos < edges.len() {
                    let top = call.len() - 1;
                    call[top].1 += 1;
                    let w = self.edges()[edges[pos]].to.0;
                    if index[w] == UNSEEN {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        call.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(NodeIx(w));
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 {
                        out.push(comp);
                    }
                }
            }
        }
        out
    }

    /// A shortest closed path inside one component, through its first dataset by name;
    /// successors are tried in name order so the path is deterministic.
    fn cycle_in(&self, comp: &[NodeIx]) -> Option<Cycle> {
        let mut member = NodeSet::empty(self.len());
        for &c in comp {
            member.insert(c);
        }
        let start = comp
            .iter()
            .copied()
            .filter(|&c| self.node(c).kind == NodeKind::DataSet)
            .min_by(|a, b| self.node(*a).name.cmp(&self.node(*b).name))
            .or_else(|| {
                comp.iter()
                    .copied()
                    .min_by(|a, b| self.node(*a).name.cmp(&self.node(*b).name))
            })?;
        let mut parent: Vec<Option<NodeIx>> = vec![None; self.len()];
        let mut seen = NodeSet::empty(self.len());
        let mut queue = VecDeque::from([start]);
        seen.insert(start);
        let mut last = None;
        'bfs: while let Some(v) = queue.pop_front() {
            let mut next: Vec<NodeIx> =
                self.successors(v).filter(|w| member.contains(*w)).collect();
            next.sort_by(|a, b| self.node(*a).name.cmp(&self.node(*b).name));
            for w in next {
                if w == start {
                    last = Some(v);
                    break 'bfs;
                }
                if seen.insert(w) {
                    parent[w.0] = Some(v);
                    queue.push_back(w);
                }
            }
        }
        let mut rev = vec![start];
        let mut cur = last?;
        while cur != start {
            rev.push(cur);
            cur = parent[cur.0]?;
        }
        rev.push(start);
        rev.reverse();
        Some(Cycle {
            path: rev.into_iter().map(|ix| self.node(ix).id()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dataset, model, transform};

    fn order(g: &Graph) -> Vec<String> {
        g.order()
            .expect("acyclic")
            .into_iter()
            .map(|ix| g.node(ix).name.clone())
            .collect()
    }

    #[test]
    fn producers_run_before_consumers() {
        // t1 reads what t2 writes, which reads what t3 writes: t3, t2, t1 although the names
        // sort the other way.
        let m = model(&[
            transform("t1", "sql", &["b"], &["c"]),
            transform("t2", "sql", &["a"], &["b"]),
            transform("t3", "sql", &["raw"], &["a"]),
        ]);
        assert_eq!(order(&Graph::build(&m)), ["t3", "t2", "t1"]);
    }

    #[test]
    fn ties_break_alphabetically() {
        let m = model(&[
            transform("zeta", "sql", &["a"], &["z"]),
            transform("alpha", "sql", &["b"], &["y"]),
            transform("mid", "sql", &["z"], &["w"]),
            transform("beta", "sql", &["c"], &["x"]),
        ]);
        assert_eq!(order(&Graph::build(&m)), ["alpha", "beta", "zeta", "mid"]);
    }

    #[test]
    fn diamond() {
        // src → split → {left, right} → {l, r} → join → out
        let m = model(&[
            transform("split", "sql", &["src"], &["a", "b"]),
            transform("right", "sql", &["b"], &["r"]),
            transform("left", "sql", &["a"], &["l"]),
            transform("join", "sql", &["l", "r"], &["out"]),
        ]);
        let g = Graph::build(&m);
        assert_eq!(order(&g), ["split", "left", "right", "join"]);
        assert!(g.diagnostics().is_empty());
        let within = {
            let mut s = NodeSet::empty(g.len());
            for name in ["join", "split"] {
                s.insert(g.find(NodeKind::Transform, name).expect("t"));
            }
            g.order_within(&s).expect("acyclic")
        };
        let names: Vec<&str> = within.iter().map(|ix| g.node(*ix).name.as_str()).collect();
        assert_eq!(names, ["split", "join"]);
    }

    #[test]
    fn cycle_is_an_error_with_its_path_and_locations() {
        let m = model(&[
            dataset("a"),
            transform("t1", "sql", &["a"], &["b"]),
            transform("t2", "sql", &["b"], &["a"]),
            transform("ok", "sql", &["x"], &["y"]),
        ]);
        let g = Graph::build(&m);
        let err = g.order().expect_err("cycle");
        assert_eq!(
            err.to_string(),
            "the pipeline graph has a cycle: a → t1 → b → t2 → a"
        );
        let GraphError::Cycle(cycles) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(cycles.len(), 1);
        let d = g.diagnostics();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::GraphCycle);
        assert_eq!(
            d[0].message,
            "the pipeline graph has a cycle: a → t1 → b → t2 → a"
        );
        // Primary: t1's inputs entry reading `a`; related: each transform's metadata.name.
        let here = d[0].location.as_ref().expect("location");
        assert_eq!(here.span.line, 11);
        let related: Vec<(u32, &str)> = d[0]
            .related
            .iter()
            .map(|r| (r.location.span.line, r.message.as_str()))
            .collect();
        assert_eq!(
            related,
            [
                (8, "transform t1 reads a and writes b"),
                (16, "transform t2 reads b and writes a")
            ]
        );
        assert_eq!(related.len(), cycles[0].transforms().count());
    }

    #[test]
    fn self_loop_and_separate_cycles() {
        let m = model(&[
            transform("inc", "sql", &["s"], &["s"]),
            transform("p", "sql", &["m"], &["n"]),
            transform("q", "sql", &["n"], &["m"]),
        ]);
        let g = Graph::build(&m);
        let cycles: Vec<String> = g.cycles().iter().map(|c| c.to_string()).collect();
        assert_eq!(cycles, ["m → p → n → q → m", "s → inc → s"]);
        assert_eq!(g.diagnostics().len(), 2);
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let n = 10_000;
        let docs: Vec<String> = (0..n)
            .map(|i| {
                let (a, b, t) = (format!("d{i}"), format!("d{}", i + 1), format!("t{i}"));
                transform(&t, "sql", &[&a], &[&b])
            })
            .collect();
        let g = Graph::build(&model(&docs));
        assert_eq!(g.order().expect("acyclic").len(), n);
        assert!(g.cycles().is_empty());
    }
}
