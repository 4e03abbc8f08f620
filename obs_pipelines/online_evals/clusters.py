"""Clusters of failing inputs: which kinds of question the app fails on, and how much more often than their share
of traffic (the rollout guide: "observability links declining eval scores to specific inputs or patterns";
Phoenix shows embedding clusters, LangSmith its Insights).

The method is the standard one for short texts, from scikit-learn:

1. TF-IDF of every request's input of the day (word uni- and bigrams, sublinear tf), fitted on ALL the day's
   traffic, so words every request shares ("please", the app's boilerplate) weigh little and the words that set a
   kind of question apart weigh much;
2. LSA: a truncated SVD of that matrix (fitted on the failing rows and a sample of the rest; skipped when the day
   has few distinct terms), rows normalised, so cosine similarity is a dot product;
3. k-means on the FAILING requests only, k chosen by the silhouette score among 2..max_clusters (a single
   cluster when no split is better than ``min_silhouette``);
4. every request of the day (failing or not) is assigned to its nearest cluster when it is at least as close to
   the centre as the cluster's own failing members typically are (their 10th percentile of similarity), which
   gives each cluster its share of traffic beside its share of failures.

A cluster is labelled by the terms that are most over-represented in its failing members against the rest of the
day's traffic, and carries the failing members closest to its centre as exemplars. ``lift`` = share of failures /
share of traffic: a cluster of 60 % of the failures made of 5 % of the traffic (lift 12) is the pattern that
explains a score drop; a cluster whose lift is about 1 fails at the app's usual rate.

Deterministic for the same input (fixed random states, rows sorted by trace id). No Dagster, no store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

CLUSTER_COLUMNS = [
    "cluster", "label", "top_terms", "failure_count", "traffic_count", "failure_share", "traffic_share", "lift",
    "failure_rate", "top_route", "top_route_share", "top_scorers", "exemplar_trace_ids", "exemplar_inputs",
]
UNCLUSTERED = -1
# words of two letters or more, digits excluded: an order number or a flight number is not a kind of question
_WORDS = r"(?u)\b[^\W\d_]{2,}\b"


@dataclass(frozen=True)
class ClusterOptions:
    """How the day's failing inputs are grouped (the `online_evals.clusters` settings)."""

    min_failures: int = 10            # fewer failing requests in the day: no clusters (too few to group)
    max_clusters: int = 8
    min_cluster_size: int = 3         # smaller groups are folded into the unclustered rest
    min_silhouette: float = 0.05      # a split no better than this keeps one cluster
    # clusters whose failing inputs share their vocabulary (cosine of the mean TF-IDF vectors, average linkage)
    # at least this much are one pattern: k-means splits one kind of question by its phrasings
    merge_similarity: float = 0.2
    svd_components: int = 100
    svd_fit_rows: int = 10_000       # requests that are not failing, sampled to fit the SVD beside the failing ones
    max_features: int = 50_000
    terms: int = 5
    exemplars: int = 3
    exemplar_chars: int = 200
    silhouette_sample: int = 3_000    # silhouette scores on at most this many failing rows (O(n^2))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})


def _vectorize(texts: list[str], failing: np.ndarray, options: ClusterOptions):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    vectorizer = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True, min_df=2, max_df=0.5, stop_words="english",
                                 token_pattern=_WORDS, max_features=options.max_features, lowercase=True,
                                 strip_accents="unicode")
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # every term pruned (a tiny or uniform day): fall back to every term
        vectorizer = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True, lowercase=True)
        tfidf = vectorizer.fit_transform(texts)
    names = vectorizer.get_feature_names_out()
    if tfidf.shape[1] <= options.svd_components:  # few terms: the TF-IDF rows themselves are small enough
        return tfidf, np.asarray(normalize(tfidf).toarray()), names
    # the SVD is fitted on the failing rows and a sample of the others (the directions that matter for the
    # clusters), then applied to every row: a day of 100k requests costs a sparse product, not a 100k-row fit
    rng = np.random.default_rng(0)
    others = np.flatnonzero(~failing)
    sample = rng.choice(others, size=min(len(others), options.svd_fit_rows), replace=False)
    fit_rows = np.sort(np.concatenate([np.flatnonzero(failing), sample]))
    svd = TruncatedSVD(n_components=min(options.svd_components, len(fit_rows) - 1), random_state=0, n_iter=4)
    svd.fit(tfidf[fit_rows])
    return tfidf, np.asarray(normalize(svd.transform(tfidf))), names


def _choose_labels(points: np.ndarray, options: ClusterOptions) -> np.ndarray:
    """k-means labels of the failing points, k by the best silhouette (1 cluster when nothing splits well)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(points)
    best_labels, best_score = np.zeros(n, dtype=int), options.min_silhouette
    sample = min(n, options.silhouette_sample)
    for k in range(2, min(options.max_clusters, n // max(options.min_cluster_size, 1)) + 1):
        labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(points)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(points, labels, metric="euclidean", sample_size=sample, random_state=0)
        if score > best_score:
            best_labels, best_score = labels, score
    return best_labels


def _merge_similar(tfidf, failing_index: np.ndarray, labels: np.ndarray, options: ClusterOptions) -> np.ndarray:
    """Labels after merging clusters whose mean TF-IDF vectors are close (average linkage on cosine)."""
    groups = sorted(set(labels))
    if len(groups) < 2:
        return labels
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.preprocessing import normalize

    means = normalize(np.vstack([np.asarray(tfidf[failing_index[labels == g]].mean(axis=0)).ravel()
                                 for g in groups]))
    tree = linkage(means, method="average", metric="cosine")
    merged = fcluster(tree, t=1.0 - options.merge_similarity, criterion="distance")
    mapping = {g: int(m) - 1 for g, m in zip(groups, merged, strict=True)}
    return np.asarray([mapping[g] for g in labels])


def _label_terms(tfidf, member_mask: np.ndarray, names: np.ndarray, count: int) -> list[str]:
    inside = np.asarray(tfidf[member_mask].mean(axis=0)).ravel()
    rest = ~member_mask
    outside = np.asarray(tfidf[rest].mean(axis=0)).ravel() if rest.any() else np.zeros_like(inside)
    weight = inside - outside
    order = np.argsort(-weight, kind="stable")
    terms: list[str] = []
    for index in order:
        if weight[index] <= 0 or len(terms) >= count:
            break
        term = str(names[index])
        if any(term in t or t in term for t in terms):  # "refund" and "refund flight": keep the first
            continue
        terms.append(term)
    return terms


def cluster_failures(requests: pd.DataFrame, options: ClusterOptions | None = None,
                     scrub: Callable[[str], str] | None = None) -> pd.DataFrame:
    """Clusters of the failing requests of ``requests`` (columns: trace_id, input, failing (bool), route,
    failing_scorers (comma-separated names, may be empty)); one row per cluster, largest share of failures first
    (columns ``CLUSTER_COLUMNS``). Requests without input text are left out of both counts. ``scrub`` masks
    personal data in the exemplar inputs kept."""
    options = options or ClusterOptions()
    scrub = scrub or (lambda text: text)
    frame = requests[requests["input"].notna() & (requests["input"].astype(str).str.strip() != "")]
    frame = frame.sort_values("trace_id", kind="stable").reset_index(drop=True)
    failing = frame["failing"].fillna(False).astype(bool).to_numpy()
    if int(failing.sum()) < options.min_failures:
        return _empty()
    texts = frame["input"].astype(str).tolist()
    tfidf, points, names = _vectorize(texts, failing, options)
    failing_index = np.flatnonzero(failing)
    labels = _merge_similar(tfidf, failing_index, _choose_labels(points[failing_index], options), options)

    centres, cutoffs = [], []
    for label in sorted(set(labels)):
        members = points[failing_index[labels == label]]
        centre = members.mean(axis=0)
        centre /= max(np.linalg.norm(centre), 1e-12)
        centres.append(centre)
        cutoffs.append(float(np.quantile(members @ centre, 0.1)))
    centres_matrix = np.vstack(centres)
    similarity = points @ centres_matrix.T
    nearest = similarity.argmax(axis=1)
    close_enough = similarity[np.arange(len(points)), nearest] >= np.asarray(cutoffs)[nearest]
    assigned = np.where(close_enough, nearest, UNCLUSTERED)
    assigned[failing_index] = labels  # a failing member belongs to its own cluster whatever the cutoff

    total_failures, total_traffic = int(failing.sum()), len(frame)
    rows = []
    for label in range(len(centres)):
        member_mask = (assigned == label) & failing
        size = int(member_mask.sum())
        if size < options.min_cluster_size:
            continue
        traffic = int((assigned == label).sum())
        failure_share, traffic_share = size / total_failures, traffic / total_traffic
        members = frame[member_mask]
        routes = members["route"].fillna("(none)").value_counts()
        scorers = (members["failing_scorers"].fillna("").str.split(",").explode().str.strip())
        scorers = scorers[scorers != ""].value_counts()
        closeness = similarity[member_mask, label]
        nearest_members = members.iloc[np.argsort(-closeness, kind="stable")[: options.exemplars]]
        terms = _label_terms(tfidf, member_mask, names, options.terms)
        rows.append({
            "cluster": label,
            "label": " / ".join(terms[:3]) if terms else "(no distinctive terms)",
            "top_terms": json.dumps(terms),
            "failure_count": size,
            "traffic_count": traffic,
            "failure_share": failure_share,
            "traffic_share": traffic_share,
            "lift": failure_share / traffic_share if traffic_share else None,
            "failure_rate": size / traffic if traffic else None,
            "top_route": str(routes.index[0]) if len(routes) else None,
            "top_route_share": float(routes.iloc[0] / size) if len(routes) else None,
            "top_scorers": json.dumps({str(k): int(v) for k, v in scorers.head(5).items()}),
            "exemplar_trace_ids": json.dumps(nearest_members["trace_id"].astype(str).tolist()),
            "exemplar_inputs": json.dumps([scrub(t)[: options.exemplar_chars]
                                          for t in nearest_members["input"].astype(str)]),
        })
    if not rows:
        return _empty()
    out = pd.DataFrame(rows, columns=CLUSTER_COLUMNS).sort_values(["failure_share", "cluster"],
                                                                 ascending=[False, True], kind="stable")
    # renumber by rank so cluster 0 is always the largest share of failures
    out["cluster"] = range(len(out))
    return out.reset_index(drop=True)
