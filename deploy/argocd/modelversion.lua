-- Argo CD health check for driftline.io/ModelVersion (Lua 5.1, as Argo CD runs it).
-- Maps status.phase, which the operator derives from verification and the
-- driftline.io/lifecycle label. See docs/argocd.md for the table.
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

local function message_of(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  local verified = find_condition(status.conditions, "Verified")
  if verified ~= nil and verified.message ~= nil and verified.message ~= "" then
    return verified.message
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  return { status = "Progressing", message = "Waiting for the operator to observe this ModelVersion" }
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

local phase = status.phase
if phase == "Ready" then
  return { status = "Healthy", message = message_of(status, "Verified and servable") }
elseif phase == "Deprecated" then
  return {
    status = "Healthy",
    message = "Deprecated: still served, new rollouts to it warn. " .. message_of(status, ""),
  }
elseif phase == "Retired" then
  -- Retired is the end state the user asked for with the driftline.io/lifecycle label,
  -- not a wait for something to resume: Healthy, so that an Application keeping its old
  -- versions in Git is not shown as Suspended forever.
  return { status = "Healthy", message = "Retired: no longer served. " .. message_of(status, "") }
elseif phase == "Pending" or phase == "Verifying" or phase == nil then
  return { status = "Progressing", message = message_of(status, "Waiting for verification") }
elseif phase == "Failed" then
  return { status = "Degraded", message = message_of(status, "Verification failed") }
end
return { status = "Unknown", message = "Unknown phase " .. tostring(phase) }
