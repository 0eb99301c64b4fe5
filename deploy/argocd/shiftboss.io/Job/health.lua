-- Argo CD health of a Shiftboss Job, read from status.phase (a Job's terminal phase is
-- final: Succeeded, Failed and Cancelled never change again).
local hs = {}
local status = obj.status or {}
local phase = status.phase

local function summary(fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
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

-- Pending, Queued, Running, Retrying: under way.
hs.status = "Progressing"
hs.message = phase .. ": " .. summary("under way")
return hs
