"""What backends that run on this host share: process identity and signals
(``processes``), iptables chains and rules (``iptables``), subnet pools under one
host-wide lock (``subnets``) and private files (``files``). Backends use these instead
of each writing their own; this package imports no backend.
"""
