"""How the robot's face index is built and searched: hnswlib's parameters, chosen by the matching benchmark
(bench/bench_face_match.py, docs/decisions.md §39) for the matcher and the bench to share.

Chosen on identity-clustered synthetic embeddings whose genuine and impostor distances are the ones the
evaluation measured on real faces, identity centres in random directions: the hard case for a graph index
(nothing near a face leads towards its match). At 100,000 embeddings, M=16 with ef_construction=100 needed
ef=512 for a recall@1 of 0.986 (1.7 ms a query); M=32 reaches 0.99 from ef=128 (0.989-0.993 over runs) and
0.993-0.997 at ef=160, 0.3-0.45 ms. ef_construction trades build time for recall: 48 built in 35 s and found
0.977 at ef=192; 100 builds in 60-90 s here (2 threads, a shared 2-core machine) and takes 75-80 MB resident.
"""

from __future__ import annotations

from typing import Final, Literal

from models.faces.embed import Metric

M: Final = 32
EF_CONSTRUCTION: Final = 100
# The search's candidate list: recall@1 >= 0.99 at 100,000 embeddings, with a margin over 128.
EF_SEARCH: Final = 160

# Below this many embeddings an exact search (hnswlib.BFIndex, or numpy) is as fast as the graph and never
# misses: 0.01 ms against 0.05 at 1,000; at 10,000 both take 0.1-0.4 ms, by the machine's load.
EXACT_BELOW: Final = 10_000

# hnswlib's space per metric. Its "l2" gives SQUARED Euclidean distances: take the square root before
# comparing with an L2 threshold. Its "cosine" gives 1 - cosine similarity, the pipeline's own distance.
SPACES: Final[dict[Metric, Literal["cosine", "l2"]]] = {Metric.COSINE: "cosine", Metric.L2: "l2"}
