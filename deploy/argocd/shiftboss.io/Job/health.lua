-- Argo CD health of a Shiftboss Job, read from status.phase. A terminal phase
-- (Succeeded, Failed, Cancelled) changes again only when a rerun is asked for:
-- spec.runGeneration (or the annotation shiftboss.io/run-generation) above
-- status.runGeneration.
local hs = {}
local status = obj.status or {}
local spec = obj.spec or {}
local phase = status.phase

local function requested_run()
  local run = spec.runGeneration or 0
  local annotations = obj.metadata.annotations or {}
  local annotated = tonumber(annotations["shiftboss.io/run-generation"] or "")
  if annotated ~= nil and annotated > run then
    run = annotated
  end
  return run
end

local function stalled()
  for _, condition in ipairs(status.conditions or {}) do
    if condition.type == "Stalled" and condition.status == "True" then
      return true
    end
  end
  return false
end

local function summary(fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
end

local terminal = phase == "Succeeded" or phase == "Failed" or phase == "Cancelled"
if terminal and spec.cancel ~= true and requested_run() > (status.runGeneration or 0) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Shiftboss operator to start run " .. requested_run()
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = summary("Succeeded")
  return hs
end
if phase == "Failed" or phase == "Cancelled" then
  hs.status = "Degraded"
  hs.message = summary(phase)
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Shiftboss operator to observe generation " .. generation
  return hs
end

if phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Shiftboss operator to pick the job up"
  return hs
end

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = summary("suspended by spec.suspend")
  return hs
end

-- Queued for a skill no worker offers, or for a pool that does not exist: only a
-- change by someone gets it going (kstatus Stalled).
if stalled() then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. summary("stalled")
  return hs
end

-- Pending, Queued, Running, Retrying: under way.
hs.status = "Progressing"
hs.message = phase .. ": " .. summary("under way")
return hs
