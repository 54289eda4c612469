//! The service dependency graph.
//!
//! A service depends on another through `depends_on` (with a condition:
//! started, healthy, or completed successfully; and `required`, `restart`),
//! `links`, `network_mode: service:x` and `volumes_from`, and through
//! `container:NAME` (network_mode, volumes_from) when NAME is a container of
//! the stack itself; the last three are hard dependencies (the container
//! cannot even be set up without the other). The graph is a petgraph `DiGraph` with an edge from each service
//! to each of its dependencies. Its topological order (dependencies first)
//! drives `up`; its reverse drives `down`. A cycle is an error that names
//! every service in it, since no order could start them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use super::PlanError;
use crate::spec::Stack;
use crate::spec::model::Condition;

/// How one service depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    DependsOn,
    Link,
    NetworkMode,
    VolumesFrom,
}

/// An edge: the dependent waits for the dependency to reach `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub kind: DepKind,
    pub condition: Condition,
    /// `false`: a missing or failed dependency is a warning, not an error.
    pub required: bool,
    /// Restart the dependent when the dependency is recreated.
    pub restart: bool,
}

/// Services and what each depends on.
#[derive(Debug, Clone)]
pub struct Graph {
    graph: DiGraph<String, Edge>,
    index: HashMap<String, NodeIndex>,
    /// Dependencies first; ties broken by name so plans are stable.
    order: Vec<NodeIndex>,
}

/// The containers `service` names by `container:NAME` (network_mode, pid,
/// ipc, volumes_from), with why.
fn container_refs(service: &crate::spec::model::Service) -> Vec<(&str, &'static str)> {
    let mut refs: Vec<(&str, &'static str)> = service
        .namespace_modes()
        .into_iter()
        .filter_map(|(key, mode)| Some((mode.strip_prefix("container:")?, key)))
        .collect();
    for from in &service.volumes_from {
        if let Some(rest) = from.strip_prefix("container:") {
            refs.push((rest.split(':').next().unwrap_or(rest), "volumes_from"));
        }
    }
    refs
}

/// The service of `stack` whose container is called `container`: by its
/// `container_name`, or by the name stack gives (`<project>-<service>-<n>`).
fn service_of_container<'a>(stack: &'a Stack, container: &str) -> Option<&'a str> {
    stack.services.iter().find_map(|(name, s)| {
        let generated = container
            .strip_prefix(&format!("{}-{name}-", stack.name))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        (generated || s.container_name.as_deref() == Some(container)).then_some(name.as_str())
    })
}

impl Graph {
    /// The graph of a stack's services. Dependencies on services that are
    /// not in the stack (disabled by a profile, `required: false`) are left
    /// out: there is nothing to wait for.
    pub fn new(stack: &Stack) -> Result<Graph, PlanError> {
        let mut edges: Vec<(String, String, Edge)> = Vec::new();
        for (name, service) in &stack.services {
            let mut seen: BTreeMap<&str, Edge> = BTreeMap::new();
            // `container:NAME` naming a container of this very stack orders
            // as `service:` does: that container must exist first.
            let by_container = container_refs(service)
                .into_iter()
                .filter_map(|(c, why)| Some((service_of_container(stack, c)?, why)));
            for (dep, why) in service.dependencies().into_iter().chain(by_container) {
                if !stack.services.contains_key(dep) {
                    continue;
                }
                let edge = match why {
                    "depends_on" => {
                        let d = &service.depends_on[dep];
                        Edge {
                            kind: DepKind::DependsOn,
                            condition: d.condition,
                            required: d.required,
                            restart: d.restart,
                        }
                    }
                    other => Edge {
                        kind: match other {
                            "links" => DepKind::Link,
                            // Namespaces joined: the other must exist first.
                            "network_mode" | "pid" | "ipc" => DepKind::NetworkMode,
                            _ => DepKind::VolumesFrom,
                        },
                        condition: Condition::ServiceStarted,
                        required: true,
                        restart: false,
                    },
                };
                // One edge per pair: depends_on's condition wins, a hard kind stays hard.
                seen.entry(dep)
                    .and_modify(|e| {
                        if edge.kind == DepKind::DependsOn {
                            let kind = if e.kind == DepKind::Link {
                                DepKind::DependsOn
                            } else {
                                e.kind
                            };
                            *e = Edge { kind, ..edge };
                        } else if matches!(edge.kind, DepKind::NetworkMode | DepKind::VolumesFrom) {
                            e.kind = edge.kind;
                            e.required = true;
                        }
                    })
                    .or_insert(edge);
            }
            for (dep, edge) in seen {
                edges.push((name.clone(), dep.to_string(), edge));
            }
        }
        Graph::from_edges(stack.services.keys().cloned(), edges)
    }

    /// A graph from service names and (dependent, dependency, edge) triples.
    pub fn from_edges(
        services: impl IntoIterator<Item = String>,
        edges: impl IntoIterator<Item = (String, String, Edge)>,
    ) -> Result<Graph, PlanError> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        let mut names: Vec<String> = services.into_iter().collect();
        names.sort();
        names.dedup();
        for name in names {
            let i = graph.add_node(name.clone());
            index.insert(name, i);
        }
        for (from, to, edge) in edges {
            if let (Some(&a), Some(&b)) = (index.get(&from), index.get(&to)) {
                graph.add_edge(a, b, edge);
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            return Err(PlanError::Cycle { services: cycle });
        }
        let order = dependency_order(&graph);
        Ok(Graph {
            graph,
            index,
            order,
        })
    }

    /// Service names, each after everything it depends on.
    pub fn order(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.order.iter().map(|&i| self.graph[i].as_str())
    }

    pub fn contains(&self, service: &str) -> bool {
        self.index.contains_key(service)
    }

    /// What `service` depends on, by name.
    pub fn dependencies(&self, service: &str) -> Vec<(&str, Edge)> {
        self.neighbours(service, Direction::Outgoing)
    }

    /// What depends on `service`, by name.
    pub fn dependents(&self, service: &str) -> Vec<(&str, Edge)> {
        self.neighbours(service, Direction::Incoming)
    }

    fn neighbours(&self, service: &str, dir: Direction) -> Vec<(&str, Edge)> {
        let Some(&i) = self.index.get(service) else {
            return Vec::new();
        };
        let mut out: Vec<(&str, Edge)> = self
            .graph
            .edges_directed(i, dir)
            .map(|e| {
                let other = if dir == Direction::Outgoing {
                    petgraph::visit::EdgeRef::target(&e)
                } else {
                    petgraph::visit::EdgeRef::source(&e)
                };
                (self.graph[other].as_str(), *e.weight())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// `names` and everything they depend on, transitively.
    pub fn with_dependencies(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = names.iter().cloned().collect();
        while let Some(name) = todo.pop() {
            if out.insert(name.clone()) {
                todo.extend(
                    self.dependencies(&name)
                        .into_iter()
                        .map(|(d, _)| d.to_string()),
                );
            }
        }
        out
    }
}

/// A cycle as the services along it, first repeated at the end; `None` when acyclic.
fn find_cycle(graph: &DiGraph<String, Edge>) -> Option<Vec<String>> {
    let mut sccs = tarjan_scc(graph);
    sccs.retain(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]));
    let scc = sccs.into_iter().min_by_key(|scc| {
        scc.iter()
            .map(|&i| graph[i].clone())
            .min()
            .unwrap_or_default()
    })?;
    let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
    // Walk the component from its first service (by name) back to itself:
    // a depth-first search restricted to the component always finds a way.
    let start = *scc.iter().min_by_key(|&&i| graph[i].clone())?;
    let mut path = vec![start];
    let mut visited = BTreeSet::from([start]);
    fn walk(
        graph: &DiGraph<String, Edge>,
        members: &BTreeSet<NodeIndex>,
        start: NodeIndex,
        path: &mut Vec<NodeIndex>,
        visited: &mut BTreeSet<NodeIndex>,
    ) -> bool {
        let Some(&here) = path.last() else {
            return false;
        };
        let mut next: Vec<NodeIndex> = graph
            .neighbors(here)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_by(|a, b| graph[*a].cmp(&graph[*b]));
        if next.contains(&start) {
            path.push(start);
            return true;
        }
        for n in next {
            if visited.insert(n) {
                path.push(n);
                if walk(graph, members, start, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, &members, start, &mut path, &mut visited);
    let mut names: Vec<String> = path.iter().map(|&i| graph[i].clone()).collect();
    // Name every member, also those off the walked path.
    for &i in &scc {
        if !names.contains(&graph[i]) {
            names.insert(names.len().saturating_sub(1), graph[i].clone());
        }
    }
    Some(names)
}

/// Dependencies first, ties by name (Kahn's algorithm over sorted ready sets).
fn dependency_order(graph: &DiGraph<String, Edge>) -> Vec<NodeIndex> {
    let mut remaining: HashMap<NodeIndex, usize> = graph
        .node_indices()
        .map(|i| (i, graph.neighbors_directed(i, Direction::Outgoing).count()))
        .collect();
    let mut ready: BTreeMap<&str, NodeIndex> = remaining
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(&i, _)| (graph[i].as_str(), i))
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for dependent in graph.neighbors_directed(i, Direction::Incoming) {
            if let Some(n) = remaining.get_mut(&dependent) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(graph[dependent].as_str(), dependent);
                }
            }
        }
    }
    if order.len() < graph.node_count() {
        // Unreachable after the cycle check; fall back to petgraph's order.
        return toposort(graph, None).unwrap_or_default();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> Edge {
        Edge {
            kind: DepKind::DependsOn,
            condition: Condition::ServiceStarted,
            required: true,
            restart: false,
        }
    }

    fn graph(edges: &[(&str, &str)]) -> Result<Graph, PlanError> {
        let names: BTreeSet<String> = edges
            .iter()
            .flat_map(|(a, b)| [a.to_string(), b.to_string()])
            .collect();
        Graph::from_edges(
            names,
            edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string(), edge())),
        )
    }

    #[test]
    fn order_puts_dependencies_first() {
        let g = graph(&[("web", "db"), ("web", "cache"), ("worker", "db")]).unwrap();
        let order: Vec<&str> = g.order().collect();
        assert_eq!(order, ["cache", "db", "web", "worker"]);
        let deps: Vec<&str> = g.dependencies("web").into_iter().map(|d| d.0).collect();
        assert_eq!(deps, ["cache", "db"]);
        let users: Vec<&str> = g.dependents("db").into_iter().map(|d| d.0).collect();
        assert_eq!(users, ["web", "worker"]);
    }

    #[test]
    fn a_cycle_names_every_service_in_it() {
        let err = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]).unwrap_err();
        let PlanError::Cycle { services } = &err else {
            panic!("{err}")
        };
        assert_eq!(services, &["a", "b", "c", "a"]);
        let text = err.to_string();
        assert!(text.contains("a → b → c → a"), "{text}");
        assert!(
            !services.contains(&"d".to_string()),
            "d only depends on the cycle"
        );
    }

    #[test]
    fn a_self_dependency_is_a_cycle() {
        let err = graph(&[("a", "a")]).unwrap_err();
        assert!(err.to_string().contains("a → a"), "{err}");
    }
}
