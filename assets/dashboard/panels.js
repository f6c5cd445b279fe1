// The dashboard's breakdown panels (GET /api/v1/reports/breakdown): ranked values with
// events, unique users and a bar for their share, the bot share, and the filters a click
// on a value adds (`where=dimension:value` on every report the page asks, ANDed).
// Loaded before dashboard.js, whose helpers ($, cell, renderRows, api…) it calls.
'use strict'

const PANEL_LIMIT = 10
// Each panel and the dimensions it can show (the first by default; more give a switch).
const PANELS = [
  {
    id: 'pages',
    title: 'Top pages',
    dimensions: [['page', 'Page'], ['entryPage', 'Entry page'], ['exitPage', 'Exit page']],
  },
  { id: 'referrers', title: 'Referrers', dimensions: [['referrerHost', 'Referrer']] },
  {
    id: 'campaigns',
    title: 'Campaigns',
    dimensions: [['utmCampaign', 'Campaign'], ['utmSource', 'Source'], ['utmMedium', 'Medium']],
  },
  { id: 'countries', title: 'Countries', dimensions: [['country', 'Country']] },
  { id: 'browsers', title: 'Browsers', dimensions: [['browser', 'Browser']] },
  { id: 'systems', title: 'Operating systems', dimensions: [['os', 'OS']] },
  { id: 'devices', title: 'Devices', dimensions: [['deviceType', 'Device']] },
]
// Dimensions whose values count visits, not events: not filters (a visit is no event).
const VISIT_DIMENSIONS = ['entryPage', 'exitPage']
// Statuses that concern one panel's question: its detail is shown in the panel. Others
// (a bad key, rate limits, an unreachable service) are the whole page's problem.
const PANEL_STATUSES = [400, 404, 422]
const regionNames = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames(['en'], { type: 'region' }) : null

const view = {
  // [{ key, value }], in the order they were added; one per key.
  filters: [],
  includeBots: false,
  // What to do once the filters or a panel's dimension change (dashboard.js: refresh).
  onChange: () => {},
}

function dimensionLabel(key) {
  for (const panel of PANELS) {
    const found = panel.dimensions.find(([dimension]) => dimension === key)
    if (found) return found[1]
  }
  return key
}

function valueLabel(dimension, value) {
  if (value === '') return '(none)'
  if (dimension === 'country' && regionNames) {
    try {
      return `${regionNames.of(value)} (${value})`
    } catch (_) {
      // Not a region code the browser knows: the code itself.
    }
  }
  return value
}

// The parameters every report shares: the filters and whether bots count.
function narrowing() {
  return {
    where: view.filters.map(({ key, value }) => `${key}:${value}`),
    includeBots: view.includeBots ? 'true' : undefined,
  }
}

// ---- building -------------------------------------------------------------------------

function buildPanels() {
  $('panels').replaceChildren(...PANELS.map(buildPanel))
}

function buildPanel(panel) {
  const section = document.createElement('section')
  section.className = 'card panel'
  section.id = `panel-${panel.id}`
  section.setAttribute('aria-labelledby', `panel-${panel.id}-title`)
  const head = document.createElement('div')
  head.className = 'panel-head'
  const title = document.createElement('h3')
  title.id = `panel-${panel.id}-title`
  title.textContent = panel.title
  head.append(title)
  if (panel.dimensions.length > 1) {
    const select = document.createElement('select')
    select.id = `panel-${panel.id}-dimension`
    select.setAttribute('aria-label', `${panel.title}: show by`)
    for (const [dimension, label] of panel.dimensions) select.add(new Option(label, dimension))
    select.addEventListener('change', () => view.onChange())
    head.append(select)
  }
  const table = document.createElement('table')
  table.className = 'breakdown'
  table.innerHTML = '<thead><tr><th scope="col"></th><th scope="col" class="num">Events</th>' +
    '<th scope="col" class="num">Users</th></tr></thead><tbody></tbody>'
  section.append(head, table)
  return section
}

function panelDimension(panel) {
  const select = $(`panel-${panel.id}-dimension`)
  return select ? select.value : panel.dimensions[0][0]
}

// ---- loading --------------------------------------------------------------------------

// Every panel's breakdown; a panel's own failure is kept beside it, not thrown.
function loadPanels(params) {
  return Promise.all(PANELS.map((panel) => {
    const dimension = panelDimension(panel)
    return api('/api/v1/reports/breakdown', { ...params, dimension, limit: PANEL_LIMIT })
      .then((answer) => ({ panel, dimension, answer }), (error) => ({ panel, dimension, error }))
  }))
}

// The failure that stops the whole page, if any panel met one.
function pageFailure(results) {
  const failed = results.find(({ error }) => error && !(error instanceof ApiFailure && PANEL_STATUSES.includes(error.status)))
  return failed ? failed.error : null
}

// ---- rendering ------------------------------------------------------------------------

function renderPanels(results) {
  for (const result of results) renderPanel(result)
  // Bots' events: from a panel counting events, not visits.
  renderBotShare(results.find(({ answer, dimension }) => answer && !VISIT_DIMENSIONS.includes(dimension)))
}

function renderPanel({ panel, dimension, answer, error }) {
  const section = $(`panel-${panel.id}`)
  const table = section.querySelector('table')
  table.tHead.rows[0].cells[0].textContent = dimensionLabel(dimension)
  table.tHead.rows[0].cells[1].textContent = VISIT_DIMENSIONS.includes(dimension) ? 'Visits' : 'Events'
  section.dataset.dimension = dimension
  const tbody = table.tBodies[0]
  if (error) {
    section.dataset.state = 'error'
    renderRows(tbody, [[wide(`Could not load: ${error.detail || error.message}`, 'panel-error')]])
    return
  }
  const rows = answer.items.map((item) => valueRow(dimension, item, answer.totalEvents))
  if (answer.otherEvents > 0) rows.push(otherRow(answer))
  section.dataset.state = rows.length ? 'ready' : 'empty'
  renderRows(tbody, rows.length ? rows : [[wide('None in this range', 'panel-empty')]])
  const values = tbody.rows
  answer.items.forEach((item, index) => { values[index].dataset.value = item.value })
}

function wide(text, className) {
  const td = cell(text, className)
  td.colSpan = 3
  return td
}

// The value as a button that filters the page (an entry or exit page as text), over a
// bar of its share of the events (or visits).
function valueRow(dimension, item, total) {
  if (VISIT_DIMENSIONS.includes(dimension)) {
    const name = cell(valueLabel(dimension, item.value), 'value')
    name.append(bar(item.events, total))
    return [name, cell(numberFormat.format(item.events), 'num'), cell(numberFormat.format(item.uniqueUsers), 'num')]
  }
  const pick = document.createElement('button')
  pick.type = 'button'
  pick.className = 'pick'
  pick.textContent = valueLabel(dimension, item.value)
  pick.title = `Show only ${dimensionLabel(dimension)} = ${item.value}`
  pick.addEventListener('click', () => addFilter(dimension, item.value))
  const name = cell(pick, 'value')
  name.append(bar(item.events, total))
  return [name, cell(numberFormat.format(item.events), 'num'), cell(numberFormat.format(item.uniqueUsers), 'num')]
}

function otherRow(answer) {
  const name = cell(`Other (${numberFormat.format(answer.otherValues)} values)`, 'value other')
  name.append(bar(answer.otherEvents, answer.totalEvents))
  return [name, cell(numberFormat.format(answer.otherEvents), 'num'), cell('–', 'num')]
}

// Width set through the CSSOM, which the CSP allows (a style attribute it would not).
function bar(part, total) {
  const track = document.createElement('span')
  track.className = 'share'
  const fill = document.createElement('span')
  fill.style.width = `${total > 0 ? Math.min(100, (100 * part) / total) : 0}%`
  track.append(fill)
  return track
}

// Bots among all the events matching the filters, whether they are counted or not.
function renderBotShare(result) {
  if (!result) {
    $('bot-share').textContent = '–'
    $('bot-events').textContent = ''
    return
  }
  const { totalEvents, botEvents } = result.answer
  const all = view.includeBots ? totalEvents : totalEvents + botEvents
  $('bot-share').textContent = share(botEvents, all)
  $('bot-events').textContent = `${numberFormat.format(botEvents)} events, ${view.includeBots ? 'included' : 'left out'}`
}

// ---- filters --------------------------------------------------------------------------

// One filter per dimension: a second click on the same dimension replaces its value.
function addFilter(key, value) {
  view.filters = view.filters.filter((filter) => filter.key !== key)
  view.filters.push({ key, value })
  renderChips()
  view.onChange()
}

function removeFilter(key) {
  view.filters = view.filters.filter((filter) => filter.key !== key)
  renderChips()
  // The removed chip had the focus: hand it to the next one, else to the numbers.
  const next = document.querySelector('#chips .chip')
  if (next) next.focus()
  else $('main').focus({ preventScroll: true })
  view.onChange()
}

function renderChips() {
  $('filters').hidden = view.filters.length === 0
  $('latest-note').hidden = view.filters.length === 0
  $('chips').replaceChildren(...view.filters.map(({ key, value }) => {
    const item = document.createElement('li')
    const chip = document.createElement('button')
    chip.type = 'button'
    chip.className = 'chip'
    chip.dataset.key = key
    chip.dataset.value = value
    chip.textContent = `${dimensionLabel(key)}: ${valueLabel(key, value)} `
    chip.setAttribute('aria-label', `Remove the filter ${dimensionLabel(key)} = ${value}`)
    const cross = document.createElement('span')
    cross.setAttribute('aria-hidden', 'true')
    cross.textContent = '×'
    chip.append(cross)
    chip.addEventListener('click', () => removeFilter(key))
    item.append(chip)
    return item
  }))
}
