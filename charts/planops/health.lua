-- Argo CD health check for the PlanOps kinds (group planops.io):
-- OdooConnection, ExceptionRule, SupplierConnector, ApprovalPolicy.
-- Install as resource.customizations.health.planops.io_<Kind> in argocd-cm.
-- Written for Argo CD's Lua 5.1 runtime (gopher-lua); `obj` is the resource.
--
-- Order mirrors kstatus so Argo CD and Flux/kubectl wait agree:
--   suspended by the user         -> Suspended
--   status older than the spec    -> Progressing
--   Stalled=True                  -> Degraded
--   Ready reason Suspended/Paused -> Suspended (pause annotation)
--   Ready=True                    -> Healthy
--   anything else, or no status   -> Progressing

local hs = {}

local function condition(status, wanted)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local metadata = obj.metadata or {}
local spec = obj.spec or {}
local status = obj.status

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted (finalizer cleaning up in Odoo)"
  return hs
end

if spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true"
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

if status.observedGeneration == nil or metadata.generation == nil
    or status.observedGeneration ~= metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and (ready.reason == "Suspended" or ready.reason == "Paused") then
  hs.status = "Suspended"
  hs.message = describe(ready, "Suspended")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready yet")
else
  hs.message = describe(condition(status, "Reconciling"), "Not ready yet")
end
return hs
