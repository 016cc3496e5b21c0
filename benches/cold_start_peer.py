"""The demo's job done with the h2o Python client, the peer of a cold `mlbuild run`
(benches/cold_start.sh): start a node, import, 80/20 split, AutoML (max_models 4, nfolds 5,
seed 42, no DeepLearning, the holdout as leaderboard frame), predictions and SHAP on the
holdout, the leader's MOJO, shutdown.

Usage: python cold_start_peer.py DATA.csv OUT_DIR
"""

import sys

import h2o
from h2o.automl import H2OAutoML


def main(data, out):
    h2o.init(max_mem_size="2G", verbose=False)
    frame = h2o.import_file(data, col_types={"RACE": "enum", "CAPSULE": "enum"})
    train, holdout = frame.split_frame(ratios=[0.8], seed=42)
    x = [c for c in frame.columns if c not in ("ID", "CAPSULE")]
    aml = H2OAutoML(
        max_models=4,
        nfolds=5,
        seed=42,
        exclude_algos=["DeepLearning"],
        sort_metric="AUC",
    )
    aml.train(x=x, y="CAPSULE", training_frame=train, leaderboard_frame=holdout)
    leader = aml.leader
    leader.predict(holdout).as_data_frame(use_pandas=False)
    try:
        shap = leader.predict_contributions(holdout)
    except Exception:  # a StackedEnsemble needs background rows
        shap = leader.predict_contributions(holdout, background_frame=train)
    shap.as_data_frame(use_pandas=False)
    mojo = leader.download_mojo(path=out)
    print(f"leader {leader.model_id}, auc {aml.leaderboard[0, 'auc']:.4f}, mojo {mojo}")
    h2o.cluster().shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
