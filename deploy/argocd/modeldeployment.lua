-- Argo CD health check for driftline.io/ModelDeployment (Lua 5.1, as Argo CD runs it).
-- Maps status.phase and the conditions the operator writes. See docs/argocd.md.
local function find_condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function message_of(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  return { status = "Progressing", message = "Waiting for the operator to observe this ModelDeployment" }
end
if generation ~= nil and status.observedGeneration < generation then
  return {
    status = "Progressing",
    message = string.format(
      "Waiting for the operator: generation %d observed, %d current",
      status.observedGeneration,
      generation
    ),
  }
end

local conditions = status.conditions
local up_to_date = find_condition(conditions, "UpToDate")
local degraded = find_condition(conditions, "Degraded")
local progressing = find_condition(conditions, "Progressing")
local ready = find_condition(conditions, "Ready")

-- A failed rollout (analysis failed, progress deadline exceeded): Degraded says why.
if degraded ~= nil and degraded.status == "True" then
  return { status = "Degraded", message = message_of(degraded, "The rollout failed") }
end
-- An aborted rollout, by failure or by request, leaves the previous version serving and
-- spec.modelVersion as the user wrote it: Git asks for a version the cluster does not
-- serve, which needs a person (name another version, or retry).
if up_to_date ~= nil and up_to_date.status == "False" and up_to_date.reason == "RolloutAborted" then
  return { status = "Degraded", message = message_of(up_to_date, "The rollout was aborted") }
end
-- The desired ModelVersion does not exist (yet): Argo CD's word for that is Missing.
if up_to_date ~= nil and up_to_date.status == "False" and up_to_date.reason == "ModelVersionNotFound" then
  return { status = "Missing", message = message_of(up_to_date, "The desired ModelVersion does not exist") }
end

local phase = status.phase
if phase == "Healthy" then
  return { status = "Healthy", message = message_of(up_to_date, "All traffic on the desired version") }
elseif phase == "Paused" then
  return { status = "Suspended", message = "Rollout paused: " .. message_of(progressing, "resume it to go on") }
elseif phase == "Progressing" or phase == nil then
  return { status = "Progressing", message = message_of(progressing, "Rolling out") }
elseif phase == "Degraded" then
  if up_to_date ~= nil and up_to_date.status == "False" then
    return { status = "Degraded", message = message_of(up_to_date, "Not serving the desired version") }
  end
  return { status = "Degraded", message = message_of(ready, "Not ready") }
end
return { status = "Unknown", message = "Unknown phase " .. tostring(phase) }
