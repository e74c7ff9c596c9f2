//! The observed objects, decoded into only the fields the report and the
//! metrics need. Both sources (live cluster, dump file) produce these.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::lenient::{LBool, LInt, LMap, LStr, LVec, Lenient};
use crate::lenient_struct;

/// Object metadata: identity, labels and the few annotations we read.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: LStr,
    #[serde(default)]
    pub namespace: LStr,
    #[serde(default)]
    pub uid: LStr,
    #[serde(default)]
    pub generation: LInt,
    #[serde(default)]
    pub labels: LMap,
    #[serde(default)]
    pub annotations: Lenient<Annotations>,
    #[serde(default)]
    pub deletion_timestamp: LStr,
}

/// The annotations the report reads; others are skipped while decoding.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct Annotations {
    #[serde(rename = "fluxcd.controlplane.io/reconcile", default)]
    pub reconcile: LStr,
}

/// A `metav1.Condition`, leniently.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub type_: LStr,
    #[serde(default)]
    pub status: LStr,
    #[serde(default)]
    pub reason: LStr,
    #[serde(default)]
    pub message: LStr,
    #[serde(default)]
    pub last_transition_time: LStr,
}

/// `{kind, name, namespace}` references (`sourceRef`, `chartRef`, ...).
#[derive(Deserialize, Default, Clone, Debug)]
pub struct Ref {
    #[serde(default)]
    pub kind: LStr,
    #[serde(default)]
    pub name: LStr,
    #[serde(default)]
    pub namespace: LStr,
}

/// Git and OCI references.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct SourceRevisionRef {
    #[serde(default)]
    pub branch: LStr,
    #[serde(default)]
    pub tag: LStr,
    #[serde(default)]
    pub semver: LStr,
    #[serde(default)]
    pub name: LStr,
}

/// HelmRelease `spec.chart`.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct HelmChartTemplate {
    #[serde(default)]
    pub spec: Lenient<HelmChartTemplateSpec>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartTemplateSpec {
    #[serde(default)]
    pub source_ref: Lenient<Ref>,
}

/// FluxInstance `spec.sync` (only its name matters to the report).
#[derive(Deserialize, Default, Clone, Debug)]
pub struct InstanceSync {
    #[serde(default)]
    pub name: LStr,
}

/// FluxInstance `spec.distribution` (the registry is a metric label).
#[derive(Deserialize, Default, Clone, Debug)]
pub struct InstanceDistribution {
    #[serde(default)]
    pub registry: LStr,
}

/// The spec fields of every Flux kind we read, in one struct.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub suspend: LBool,
    #[serde(default)]
    pub source_ref: Lenient<Ref>,
    #[serde(default)]
    pub url: LStr,
    #[serde(default)]
    pub path: LStr,
    #[serde(rename = "ref", default)]
    pub ref_: Lenient<SourceRevisionRef>,
    #[serde(default)]
    pub endpoint: LStr,
    #[serde(default)]
    pub bucket_name: LStr,
    #[serde(rename = "type", default)]
    pub type_: LStr,
    #[serde(default)]
    pub chart_ref: Lenient<Ref>,
    #[serde(default)]
    pub chart: Lenient<HelmChartTemplate>,
    #[serde(default)]
    pub image: LStr,
    #[serde(default)]
    pub image_repository_ref: Lenient<Ref>,
    #[serde(default)]
    pub sync: Lenient<InstanceSync>,
    #[serde(default)]
    pub distribution: Lenient<InstanceDistribution>,
    /// Kustomization and HelmRelease `spec.dependsOn` (`{name, namespace}`, the same kind),
    /// ResourceSet's (`{apiVersion, kind, name, namespace}`): the status page's root causes.
    #[serde(default)]
    pub depends_on: LVec<Ref>,
}

/// `status.artifact`.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct Artifact {
    #[serde(default)]
    pub revision: LStr,
    #[serde(default)]
    pub size: LInt,
}

/// The status fields of every Flux kind we read.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub conditions: LVec<Condition>,
    #[serde(default)]
    pub artifact: Lenient<Artifact>,
    #[serde(default)]
    pub last_attempted_revision: LStr,
    #[serde(default)]
    pub last_applied_revision: LStr,
    #[serde(default)]
    pub webhook_path: LStr,
}

/// A Flux object (any kind), slim.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct FluxObject {
    #[serde(default)]
    pub api_version: LStr,
    #[serde(default)]
    pub kind: LStr,
    #[serde(default)]
    pub metadata: Lenient<Meta>,
    #[serde(default)]
    pub spec: Lenient<Spec>,
    #[serde(default)]
    pub status: Lenient<Status>,
}

impl FluxObject {
    pub fn meta(&self) -> Option<&Meta> {
        self.metadata.get()
    }
    pub fn name(&self) -> &str {
        self.meta().map(|m| m.name.str()).unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.meta().map(|m| m.namespace.str()).unwrap_or("")
    }
    pub fn spec(&self) -> Option<&Spec> {
        self.spec.get()
    }
    pub fn status(&self) -> Option<&Status> {
        self.status.get()
    }
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.meta().and_then(|m| m.labels.get())
    }
    /// The first condition of the given type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status()?
            .conditions
            .iter()
            .find(|c| c.type_.str() == type_)
    }
    /// `spec.suspend == true`.
    pub fn spec_suspended(&self) -> bool {
        self.spec().is_some_and(|s| s.suspend.is_true())
    }
    /// Label or annotation `fluxcd.controlplane.io/reconcile` equals `disabled`
    /// (case-insensitive): how operator kinds are suspended.
    pub fn reconcile_disabled(&self) -> bool {
        let Some(meta) = self.meta() else {
            return false;
        };
        let disabled =
            |v: &str| v.eq_ignore_ascii_case(flux_reporter_api::constants::RECONCILE_DISABLED);
        let by_label = meta
            .labels
            .get()
            .and_then(|l| l.get(flux_reporter_api::constants::RECONCILE_ANNOTATION))
            .is_some_and(|v| disabled(v));
        let by_annotation = meta
            .annotations
            .get()
            .is_some_and(|a| disabled(a.reconcile.str()));
        by_label || by_annotation
    }
}

/// HelmRelease `spec.chart` is an object; HelmChart `spec.chart` is the chart
/// name. Both shapes are valid; only the object carries what we read.
impl<'de> crate::lenient::Target<'de> for HelmChartTemplate {
    const EXPECTED: &'static str = "an object or a chart name";
    fn from_str(_: &str) -> Option<Self> {
        Some(HelmChartTemplate::default())
    }
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        HelmChartTemplate::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

lenient_struct!(
    Meta,
    Annotations,
    Condition,
    Ref,
    SourceRevisionRef,
    HelmChartTemplateSpec,
    InstanceSync,
    InstanceDistribution,
    Spec,
    Artifact,
    Status,
    FluxObject,
);

/// A CRD, slim: what discovery needs.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct Crd {
    #[serde(default)]
    pub metadata: Lenient<Meta>,
    #[serde(default)]
    pub spec: Lenient<CrdSpec>,
    #[serde(default)]
    pub status: Lenient<CrdStatus>,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct CrdSpec {
    #[serde(default)]
    pub group: LStr,
    #[serde(default)]
    pub names: Lenient<CrdNames>,
    #[serde(default)]
    pub scope: LStr,
    #[serde(default)]
    pub versions: LVec<CrdVersion>,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct CrdNames {
    #[serde(default)]
    pub kind: LStr,
    #[serde(default)]
    pub plural: LStr,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct CrdVersion {
    #[serde(default)]
    pub name: LStr,
    #[serde(default)]
    pub served: LBool,
    #[serde(default)]
    pub storage: LBool,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CrdStatus {
    #[serde(default)]
    pub stored_versions: LVec<String>,
}

lenient_struct!(Crd, CrdSpec, CrdNames, CrdVersion, CrdStatus);

/// A Deployment, slim: what kstatus and the components section need.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: Lenient<Meta>,
    #[serde(default)]
    pub spec: Lenient<DeploymentSpec>,
    #[serde(default)]
    pub status: Lenient<DeploymentStatus>,
    /// Fields read with the wrong type: Deployments come back as a `Vec`,
    /// not as list items, so the count travels with the object to be
    /// reported as malformed like any Flux object.
    #[serde(skip)]
    pub invalid_fields: u32,
}

impl<'de> crate::lenient::Target<'de> for Deployment {
    const EXPECTED: &'static str = "an object";
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let before = crate::lenient::invalid_count();
        let mut d = Deployment::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        d.invalid_fields = crate::lenient::invalid_count().wrapping_sub(before);
        Ok(Some(d))
    }
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default)]
    pub replicas: LInt,
    #[serde(default)]
    pub progress_deadline_seconds: LInt,
    #[serde(default)]
    pub template: Lenient<PodTemplate>,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct PodTemplate {
    #[serde(default)]
    pub spec: Lenient<PodSpec>,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct PodSpec {
    #[serde(default)]
    pub containers: LVec<Container>,
}

#[derive(Deserialize, Default, Clone, Debug)]
pub struct Container {
    #[serde(default)]
    pub name: LStr,
    #[serde(default)]
    pub image: LStr,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default)]
    pub observed_generation: LInt,
    #[serde(default)]
    pub replicas: LInt,
    #[serde(default)]
    pub updated_replicas: LInt,
    #[serde(default)]
    pub ready_replicas: LInt,
    #[serde(default)]
    pub available_replicas: LInt,
    #[serde(default)]
    pub conditions: LVec<Condition>,
}

lenient_struct!(
    DeploymentSpec,
    PodTemplate,
    PodSpec,
    Container,
    DeploymentStatus
);

/// The API server's `/version`.
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    #[serde(default)]
    pub git_version: String,
    #[serde(default)]
    pub platform: String,
}

/// One page of a list, with the continue token.
#[derive(Deserialize, Debug)]
#[serde(bound(deserialize = "crate::lenient::Item<T>: Deserialize<'de>"))]
pub struct Page<T> {
    #[serde(default)]
    pub metadata: Lenient<ListMeta>,
    #[serde(default = "Vec::new")]
    pub items: Vec<crate::lenient::Item<T>>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(rename = "continue", default)]
    pub continue_: LStr,
    #[serde(default)]
    pub resource_version: LStr,
}

lenient_struct!(ListMeta);
