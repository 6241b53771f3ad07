"""Two re-ID models in one database: the default ResNet50 and a timm backbone of another size.

Each version's vectors keep their own size and their own HNSW index; identities run per version
(the configured one, or the run config's ``model_version``); the kNN queries of identities use
the version's index, the review queue ranks either version; switching models loses and mixes
nothing.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest

from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_pipeline.db.connect import connect
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.db.indexes import (
    create_embeddings_hnsw,
    drop_embeddings_hnsw,
    halfvec_cast,
    index_name,
)
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.model_versions import weights_version
from deer_pipeline.partitions import camera_locations
from deer_pipeline.reid.matching import query_literal
from deer_pipeline.reid.units import _NEAREST
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.review_app.queue import ProposalQueue

TINY = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from deer_pipeline.vision.untrained import save_untrained_detector, save_untrained_timm
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("two_models_world")
    generate_dataset(root, images=8, locations=1, seed=23, width=960, height=540, workers=2)
    folder = next(p.name for p in root.iterdir() if p.is_dir())
    det = DEFAULT_DETECTOR_WEIGHTS
    if not det.is_file():
        det = save_untrained_detector(tmp_path_factory.mktemp("w") / "det.pt")
    tiny = save_untrained_timm(tmp_path_factory.mktemp("w") / "tiny.pt", TINY, seed=5)
    return root, folder, str(det), f"timm:{TINY}@{tiny}"


def _materialize(instance, key, assets, resources, identity_config=None):
    run_config = {"ops": {}}
    if inference in assets:
        run_config["ops"]["inference"] = {"config": {"batch_size": 4, "decode_workers": 2}}
    if identity_config:
        run_config["ops"]["deer_identities"] = {"config": identity_config}
    result = dg.materialize(
        assets, partition_key=key, instance=instance, resources=resources, run_config=run_config
    )
    assert result.success
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return out


def _plan(cur, query: str, params: dict) -> str:
    cur.execute("EXPLAIN " + query, params)
    return "\n".join(r[0] for r in cur.fetchall())


def _grow(cur, version: str, dim: int, n: int) -> None:
    """Add ``n`` random vectors of a version (own detections) and ANALYZE: a table where a
    sequential scan no longer pays, so the planner's own choice shows (the caller rolls back)."""
    cur.execute("SELECT min(id) FROM images")
    cur.execute(
        "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence,"
        " x1, y1, x2, y2) SELECT %s, %s, k, 'doe', 0.9, 0, 0, 1, 1"
        " FROM generate_series(1, %s) k RETURNING id",
        (cur.fetchone()[0], f"grow-{version}", n),
    )
    ids = np.array([r[0] for r in cur.fetchall()])
    vectors = np.random.default_rng(dim).normal(size=(n, dim)).astype(np.float32)
    drop_embeddings_hnsw(cur, version)  # a bulk load: rebuilt after, as the writer does
    copy_rows(
        cur,
        "embeddings",
        [("detection_id", "int8"), ("model_version", "text"), ("embedding", "halfvec")],
        {"detection_id": ids, "model_version": [version] * n, "embedding": vectors},
    )
    create_embeddings_hnsw(cur, version)
    cur.execute("ANALYZE embeddings")


def _sizes(cur) -> dict:
    cur.execute(
        "SELECT e.model_version, vector_dims(e.embedding), count(*) FROM embeddings e"
        " GROUP BY 1, 2 ORDER BY 1"
    )
    return {v: (d, n) for v, d, n in cur.fetchall()}


def _mixed(cur) -> int:
    """Vectors whose size is not their version's registered one (embeddings and galleries)."""
    cur.execute(
        "SELECT (SELECT count(*) FROM embeddings e JOIN embedding_models m USING (model_version)"
        "         WHERE vector_dims(e.embedding) <> m.dimensions)"
        "     + (SELECT count(*) FROM deer d LEFT JOIN embedding_models m USING (model_version)"
        "         WHERE d.embedding IS NOT NULL AND (m.dimensions IS NULL"
        "           OR vector_dims(d.embedding) <> m.dimensions"
        "           OR vector_dims(d.embedding_sum) <> m.dimensions))"
    )
    return cur.fetchone()[0]


def test_timm_and_default_models_side_by_side(world, clean_db):
    root, folder, det, tiny_spec = world
    key = location_key(folder)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    base = {
        "database": DatabaseResource(),
        "image_root": ImageRootResource(root=str(root), settle_seconds=0),
        "detector": DetectorResource(weights=det, device="cpu", conf=0.05, batch_size=4),
    }
    tiny = {**base, "embedder": EmbedderResource(weights=tiny_spec, device="cpu", batch_size=8)}
    default = {**base, "embedder": EmbedderResource(device="cpu", batch_size=8)}
    tiny_v, default_v = weights_version(tiny_spec), EmbedderResource().model_version()
    conn = connect(clean_db.data, autocommit=True)
    cur = conn.cursor()

    graph = [raw_images, inference, deer_identities]
    meta = _materialize(instance, key, graph, tiny)
    assert meta["embeddings"]["model_version"] == tiny_v
    assert meta["deer_identities"]["embedding_model"] == tiny_v
    n = meta["embeddings"]["embeddings"]
    assert n > 0 and _sizes(cur) == {tiny_v: (192, n)}
    cur.execute("SELECT count(*), count(DISTINCT deer_id) FROM sightings")
    sightings, deer = cur.fetchone()
    assert sightings == n and deer > 0  # every box identified
    cur.execute("SELECT DISTINCT model_version, vector_dims(embedding) FROM deer")
    assert cur.fetchall() == [(tiny_v, 192)]
    cur.execute("SELECT detection_id, embedding::text FROM embeddings ORDER BY 1")
    tiny_rows = cur.fetchall()

    meta = _materialize(instance, key, [inference, deer_identities], default)
    assert meta["embeddings"]["model_version"] == default_v
    assert meta["deer_identities"]["embedding_model"] == default_v
    assert _sizes(cur) == {default_v: (2048, n), tiny_v: (192, n)}  # both sets, none lost
    cur.execute(
        "SELECT detection_id, embedding::text FROM embeddings WHERE model_version = %s ORDER BY 1",
        (tiny_v,),
    )
    assert cur.fetchall() == tiny_rows  # the timm model's rows untouched
    cur.execute("SELECT model_version, dimensions FROM embedding_models ORDER BY 2")
    assert cur.fetchall() == [(tiny_v, 192), (default_v, 2048)]
    cur.execute("SELECT DISTINCT model_version FROM deer")
    assert cur.fetchall() == [(default_v,)]  # the galleries follow the configured model
    assert _mixed(cur) == 0

    # each version's kNN query (identities) goes through that version's own index, the planner's
    # own choice once the version has enough rows to make a sequential scan dearer (measured: a
    # few thousand; below that a sequential scan is cheaper and the planner rightly takes it)
    for version, dim, more in ((tiny_v, 192, 3000), (default_v, 2048, 3000)):
        q = np.random.default_rng(0).normal(size=dim)
        with conn.cursor() as c:
            c.execute("BEGIN")
            _grow(c, version, dim, more)
            plan = _plan(
                c,
                _NEAREST.format(cast=halfvec_cast(dim)),
                {"q": query_literal(q), "mv": version, "k": 5},
            )
            c.execute("ROLLBACK")
        assert index_name("embeddings", version) in plan, plan

    # identities for the timm version again (run config), and review's queue on either version
    for version, dim in ((tiny_v, 192), (default_v, 2048)):
        meta = _materialize(instance, key, [deer_identities], default, {"model_version": version})
        assert meta["deer_identities"]["embedding_model"] == version
        cur.execute("SELECT DISTINCT model_version, vector_dims(embedding) FROM deer")
        assert cur.fetchall() == [(version, dim)]
        assert _mixed(cur) == 0
        with conn.cursor() as c:
            c.execute("BEGIN")
            c.execute("SELECT id FROM deer ORDER BY id")
            ids = [r[0] for r in c.fetchall()]
            # the queue ranks this version's deer with their own vectors (any size)
            assert ProposalQueue().refresh(c) == len(ids)
            c.execute("ROLLBACK")
    assert _sizes(cur) == {default_v: (2048, n), tiny_v: (192, n)}
    conn.close()
