-- Argo CD health check for driftline.io/DriftPolicy (Lua 5.1, as Argo CD runs it).
-- Maps the conditions the operator and the drift sidecars write. See docs/argocd.md.
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
  return { status = "Progressing", message = "Waiting for the operator to observe this DriftPolicy" }
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
local drifted = find_condition(conditions, "Drifted")
local target_found = find_condition(conditions, "TargetFound")
local evaluating = find_condition(conditions, "Evaluating")
local ready = find_condition(conditions, "Ready")

if drifted ~= nil and drifted.status == "True" then
  local severity = status.severity
  if severity == nil then
    severity = "unknown"
  end
  return {
    status = "Degraded",
    message = "Drift confirmed (severity " .. severity .. "): " .. message_of(drifted, ""),
  }
end
-- The ModelDeployment it watches does not exist: Argo CD's word for that is Missing.
if target_found ~= nil and target_found.status == "False" then
  return { status = "Missing", message = message_of(target_found, "The target ModelDeployment does not exist") }
end
-- Serving goes on, but drift is not watched (no, unreadable or invalid reference
-- profile): the policy does not do its job until someone fixes it.
if evaluating ~= nil and evaluating.status == "False" then
  return { status = "Degraded", message = "Drift is not evaluated: " .. message_of(evaluating, "") }
end
if ready ~= nil and ready.status == "True" then
  return { status = "Healthy", message = message_of(drifted, message_of(ready, "Watching for drift")) }
end
if ready ~= nil and ready.status == "False" then
  return { status = "Degraded", message = message_of(ready, "Not ready") }
end
return { status = "Progressing", message = message_of(ready, "Waiting for the operator") }
