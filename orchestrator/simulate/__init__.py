"""`meshbed simulate`: a topology in virtual time, driving the agent's own swarm core
(peer.core) over a model of the network. See docs/simulate.md."""
