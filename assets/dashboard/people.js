// The dashboard's people views: a funnel (GET /api/v1/reports/funnel) and a retention grid
// (GET /api/v1/reports/retention) over the page's range, subsystem and filters, asked for
// with their own "Show" buttons (they read more than the other reports) and asked again
// when the page refreshes once shown.
// Loaded after panels.js and before dashboard.js, whose helpers ($, api, cell…) it calls.
'use strict'

const FUNNEL_STEPS = 4
const people = { funnelShown: false, retentionShown: false }

function buildPeople() {
  const steps = $('funnel-steps')
  for (let step = 1; step <= FUNNEL_STEPS; step += 1) {
    const field = document.createElement('div')
    field.className = 'field'
    const label = document.createElement('label')
    label.htmlFor = `funnel-step-${step}`
    label.textContent = `Step ${step}`
    const select = document.createElement('select')
    select.id = `funnel-step-${step}`
    select.className = 'funnel-step'
    // Steps past the second may be left out.
    select.add(new Option(step > 2 ? '(none)' : 'Choose…', ''))
    field.append(label, select)
    steps.append(field)
  }
  $('funnel-form').addEventListener('submit', (event) => {
    event.preventDefault()
    people.funnelShown = true
    loadFunnel()
  })
  $('retention-form').addEventListener('submit', (event) => {
    event.preventDefault()
    people.retentionShown = true
    loadRetention()
  })
}

// The event types the page has seen, offered as steps and cohort events.
function syncPeopleOptions(types) {
  const selects = [...document.querySelectorAll('.funnel-step'), $('retention-start'), $('retention-return')]
  for (const select of selects) syncOptions(select, types, (type) => type)
}

// After a page refresh: the shown views follow the new range and filters.
function refreshPeople() {
  if (people.funnelShown) loadFunnel()
  if (people.retentionShown) loadRetention()
}

// The page's scope (range, partner, subsystem) and its filters, as every report takes them.
function peopleScope() {
  const scope = filters()
  return { partnerId: scope.partnerId, subsystemId: scope.subsystemId, from: scope.from, to: scope.to, ...narrowing() }
}

async function loadPeopleView(card, load, render) {
  card.dataset.state = 'loading'
  const note = card.querySelector('.people-note')
  try {
    const scope = peopleScope()
    const answer = await load(scope)
    render(answer, scope)
    card.dataset.from = scope.from
    card.dataset.to = scope.to
    note.textContent = `Data as of ${formatTime(answer.dataAsOf, $('tz').value)}.`
    card.dataset.state = 'ready'
  } catch (error) {
    card.dataset.state = 'error'
    note.textContent = explain(error).text
  }
}

function loadFunnel() {
  const steps = Array.from(document.querySelectorAll('.funnel-step'), (select) => select.value).filter(Boolean)
  const card = $('funnel-card')
  if (steps.length < 2) {
    card.dataset.state = 'error'
    card.querySelector('.people-note').textContent = 'Choose at least two steps.'
    return
  }
  const within = $('funnel-window').value
  loadPeopleView(card, (scope) => api('/api/v1/reports/funnel', { ...scope, steps: steps.join(','), window: within }), renderFunnel)
}

function renderFunnel(funnel) {
  const first = funnel.steps[0].users
  const rows = funnel.steps.map((step, index) => [
    cell(`${index + 1}. ${step.eventType}`),
    cell(numberFormat.format(step.users), 'num'),
    cell(bar(step.users, first)),
    cell(percent(step.conversionFromStart), 'num'),
    cell(index === 0 ? '' : percent(step.conversionFromPrevious), 'num'),
    cell(duration(step.medianSecondsFromPrevious), 'num'),
  ])
  renderRows($('funnel').tBodies[0], rows)
}

function loadRetention() {
  const startEvent = $('retention-start').value
  const returnEvent = $('retention-return').value
  const card = $('retention-card')
  if (!startEvent || !returnEvent) {
    card.dataset.state = 'error'
    card.querySelector('.people-note').textContent = 'Choose both events.'
    return
  }
  const ask = { startEvent, returnEvent, interval: $('retention-interval').value, periods: $('retention-periods').value, tz: $('tz').value }
  loadPeopleView(card, (scope) => api('/api/v1/reports/retention', { ...scope, ...ask }), renderRetention)
}

function renderRetention(retention) {
  const table = $('retention')
  const periods = Math.max(0, ...retention.cohorts.map((cohort) => cohort.returned.length))
  const unit = retention.interval === 'week' ? 'Week' : 'Day'
  const head = document.createElement('tr')
  for (const name of ['Cohort', 'People', ...Array.from({ length: periods }, (_, k) => `${unit} ${k + 1}`)]) {
    const th = document.createElement('th')
    th.scope = 'col'
    th.textContent = name
    if (name !== 'Cohort') th.className = 'num'
    head.append(th)
  }
  table.tHead.replaceChildren(head)
  const timeZone = $('tz').value
  const day = new Intl.DateTimeFormat('en', { timeZone, year: 'numeric', month: 'short', day: 'numeric' })
  const rows = retention.cohorts.map((cohort) => {
    const cells = [cell(day.format(new Date(cohort.start))), cell(numberFormat.format(cohort.users), 'num')]
    for (const returned of cohort.returned) {
      const td = cell(cohort.users ? percent(returned / cohort.users) : '–', 'num retention-cell')
      td.title = `${numberFormat.format(returned)} of ${numberFormat.format(cohort.users)}`
      td.dataset.returned = String(returned)
      // Darker for a larger share: the grid reads at a glance.
      td.style.setProperty('--share', cohort.users ? String(returned / cohort.users) : '0')
      cells.push(td)
    }
    return cells
  })
  renderRows(table.tBodies[0], rows.length ? rows : [[cell('No one started in this range')]])
}

function percent(fraction) {
  return `${(fraction * 100).toFixed(1)}%`
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return ''
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`
  return `${(seconds / 86400).toFixed(1)} d`
}
