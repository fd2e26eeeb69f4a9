{{/*
CEL expression of the "has-placeholder-or-annotation" match condition. The
apiserver calls the webhook only when it is true, so objects that can need no
change never pay for a webhook call.

It is true when:
- the object is of a kind whose layout this expression does not know (kinds
  added through workloadKinds): such objects are always sent;
- the object, its pod template or its CronJob's pod template carries an
  annotation with our prefix (env additions, the opt-out, the injected
  marker);
- any container, initContainer or ephemeralContainer of the pod spec or pod
  template has an env value containing "SECRET:", or starting with a
  misspelled prefix that the service warns about: the word in upper, lower
  or capitalised case, singular or plural, then ":", ";" or "=" (the list
  is MISSPELLED_PREFIXES in webhook/admission/scanning.py);
- a run.ai v2alpha1 workload has such a value in spec.environment.items,
  where Run:AI keeps env vars as a map of name to {value: ...}.
"contains" rather than "startsWith" so that no value the service reads as a
placeholder is ever skipped; a value that merely mentions the word costs one
call.

Every field access is guarded with has(): a failing condition counts as an
error, and with failurePolicy Fail the apiserver rejects the request. Pods
and the built-in workloads are serialized from typed objects and carry no
explicit nulls, and the apiserver prunes nulls from custom resources whose
schema does not allow them, so has() is enough here.
*/}}
{{- define "runai-secrets-webhook.matchExpression" -}}
{{- $prefix := printf "%s/" .Values.annotationPrefix -}}
!(has(object.kind) && object.kind in ['Pod', 'Job', 'CronJob', 'Deployment', 'StatefulSet',
    'ReplicaSet', 'DaemonSet', 'RunaiJob', 'TrainingWorkload', 'InteractiveWorkload',
    'DistributedWorkload'])
|| (has(object.spec) && has(object.spec.environment) && has(object.spec.environment.items)
  && object.spec.environment.items.exists(name,
    'value' in object.spec.environment.items[name]
      && {{ include "runai-secrets-webhook.referenceLike" "object.spec.environment.items[name].value" }}))
|| [
  object,
  has(object.spec) && has(object.spec.template) ? object.spec.template : {},
  has(object.spec) && has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec)
    && has(object.spec.jobTemplate.spec.template) ? object.spec.jobTemplate.spec.template : {}
].exists(t,
  (has(t.metadata) && has(t.metadata.annotations)
    && t.metadata.annotations.exists(k, k.startsWith('{{ $prefix }}')))
  || (has(t.spec) && ['containers', 'initContainers', 'ephemeralContainers'].exists(f,
    f in t.spec && t.spec[f].exists(c,
      has(c.env) && c.env.exists(e, has(e.value)
        && {{ include "runai-secrets-webhook.referenceLike" "e.value" }})))))
{{- end }}

{{/*
CEL test that the string expression given as the context is a reference or
starts with one of the misspelled prefixes that the service warns about.
Each is a fixed string, so the cost per value does not grow with its length,
and the list is read only for a value that starts with the word.
*/}}
{{- define "runai-secrets-webhook.referenceLike" -}}
({{ . }}.contains('SECRET:')
  || ({{ . }}.startsWith('SECRET') || {{ . }}.startsWith('secret') || {{ . }}.startsWith('Secret'))
    && ['SECRET;', 'SECRET=', 'SECRETS:', 'SECRETS;', 'SECRETS=', 'secret:', 'secret;', 'secret=', 'secrets:', 'secrets;', 'secrets=', 'Secret:', 'Secret;', 'Secret=', 'Secrets:', 'Secrets;', 'Secrets='].exists(p, {{ . }}.startsWith(p)))
{{- end }}
