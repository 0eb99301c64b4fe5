-- Argo CD health of a Shiftboss WorkerPool, read from the conditions the operator writes
-- (kstatus conventions: Reconciling and Stalled are present only while True).
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function say(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Shiftboss operator to observe the pool"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Shiftboss operator to observe generation " .. generation
  return hs
end

local stalled = condition("Stalled")
local degraded = condition("Degraded")
if is_true(stalled) or is_true(degraded) then
  local trouble = stalled
  if not is_true(trouble) then
    trouble = degraded
  end
  hs.status = "Degraded"
  hs.message = say(trouble, "The pool is degraded")
  if trouble.reason ~= nil and trouble.reason ~= "" then
    hs.message = trouble.reason .. ": " .. hs.message
  end
  return hs
end

local ready = condition("Ready")
local reconciling = condition("Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = say(reconciling, "The pool is reconciling")
  return hs
end
if not is_true(ready) then
  hs.status = "Progressing"
  hs.message = say(ready, "Waiting for the pool's workers")
  return hs
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = say(ready, "Dispatch paused")
  return hs
end

hs.status = "Healthy"
hs.message = say(ready, "Workers ready")
return hs
