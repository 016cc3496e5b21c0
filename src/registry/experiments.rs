//! Experiments (`mlbuild exp run`): a grid of `--set` values run point by point, each point an
//! ordinary run recorded with its overrides and the version it registered (docs/experiments.md).

use serde::Serialize;
use sqlx::Row;

use super::{db, now_rfc3339, retry, Registry, Result, RunId};

/// One point of an experiment as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// 1-based, in grid order.
    pub point: u32,
    /// The point's `KEY=VALUE` overrides, in the order of the `--set` flags.
    pub overrides: Vec<String>,
    pub run: Option<RunId>,
    /// The version the point's run registered (none when it failed or escalated).
    pub version: Option<String>,
    /// `ok`, `failed`, `escalated`, `gate_failed`, `interrupted`, or `running`.
    pub status: String,
}

/// An experiment: its grid (`--set` flags as given) and its points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub id: i64,
    pub started_at: String,
    pub grid: Vec<String>,
    pub points: Vec<Point>,
}

impl Registry {
    /// Starts an experiment of `project` over `grid` and returns its id.
    pub async fn begin_experiment(&self, project: &str, grid: &[String]) -> Result<i64> {
        let grid = serde_json::to_string(grid).expect("strings serialise");
        retry("starting an experiment", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(db("starting an experiment"))?;
            let id = super::next_id(&mut tx, "experiment", "allocating an experiment id").await?;
            sqlx::query(
                "INSERT INTO experiments (id, project, started_at, grid) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(project)
            .bind(now_rfc3339())
            .bind(&grid)
            .execute(&mut *tx)
            .await
            .map_err(db("recording an experiment"))?;
            tx.commit().await.map_err(db("recording an experiment"))?;
            Ok(Some(id))
        })
        .await
    }

    /// Records (or updates) point `point` of `experiment`.
    pub async fn record_point(&self, experiment: i64, point: &Point) -> Result<()> {
        let overrides = serde_json::to_string(&point.overrides).expect("strings serialise");
        retry("recording an experiment's point", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db("recording a point"))?;
            sqlx::query("DELETE FROM experiment_points WHERE experiment = $1 AND point = $2")
                .bind(experiment)
                .bind(i64::from(point.point))
                .execute(&mut *tx)
                .await
                .map_err(db("recording a point"))?;
            sqlx::query(
                "INSERT INTO experiment_points (experiment, point, overrides, run, version, status) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(experiment)
            .bind(i64::from(point.point))
            .bind(&overrides)
            .bind(point.run)
            .bind(point.version.as_deref())
            .bind(&point.status)
            .execute(&mut *tx)
            .await
            .map_err(db("recording a point"))?;
            tx.commit().await.map_err(db("recording a point"))?;
            Ok(Some(()))
        })
        .await
    }

    /// The newest experiment of `project`, with its points; `None` when there is none (or the
    /// registry is older than experiments: readers never migrate).
    pub async fn latest_experiment(&self, project: &str) -> Result<Option<Experiment>> {
        if self.schema < super::schema::EXPERIMENTS {
            return Ok(None);
        }
        let Some(row) = sqlx::query(
            "SELECT id, started_at, grid FROM experiments WHERE project = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(project)
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(db("reading experiments"))?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0).map_err(db("reading experiments"))?;
        let started_at: String = row.try_get(1).map_err(db("reading experiments"))?;
        let grid: String = row.try_get(2).map_err(db("reading experiments"))?;
        let rows = sqlx::query(
            "SELECT point, overrides, run, version, status FROM experiment_points \
             WHERE experiment = $1 ORDER BY point",
        )
        .bind(id)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("reading an experiment's points"))?;
        let mut points = Vec::new();
        for r in rows {
            let get = |e| db("reading an experiment's points")(e);
            let point: i64 = r.try_get(0).map_err(get)?;
            let overrides: String = r.try_get(1).map_err(get)?;
            points.push(Point {
                point: point as u32,
                overrides: serde_json::from_str(&overrides).unwrap_or_default(),
                run: r.try_get(2).map_err(get)?,
                version: r.try_get(3).map_err(get)?,
                status: r.try_get(4).map_err(get)?,
            });
        }
        Ok(Some(Experiment {
            id,
            started_at,
            grid: serde_json::from_str(&grid).unwrap_or_default(),
            points,
        }))
    }
}
