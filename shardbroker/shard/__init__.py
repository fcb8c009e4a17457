"""The shard layer: what every process of the mesh (worker, storage, supervisor) does as
a member of it. member.py: the drain loop, peers, control verbs, acknowledgements and the
PONG barrier; interest.py: local and peer interest; boot.py: start, meet peers, tick."""
