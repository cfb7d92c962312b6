"""rtnetlink for the lab: pyroute2's message classes (extended in rtnl.py) sent in batches."""
